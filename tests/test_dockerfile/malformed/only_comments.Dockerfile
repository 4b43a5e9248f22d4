# just
# comments
