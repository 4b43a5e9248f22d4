from executor.dockerfile import history


def test_run_with_args_and_suffix():
    assert history.run(["/bin/sh", "-c", "echo hi"], {"A": "1", "B": "2"}) == "RUN |2 A=1 B=2 /bin/sh -c echo hi # buildkit"
    assert history.run(["/bin/sh", "-c", "true"], {}) == "RUN /bin/sh -c true # buildkit"


def test_go_formats():
    assert history.exec_form("CMD", ["sh", "-c", 'echo "x"']) == 'CMD ["sh" "-c" "echo \\"x\\""]'
    assert history.expose(["443/tcp", "80/tcp"]) == "EXPOSE map[443/tcp:{} 80/tcp:{}]"
    assert history.volume(["/data", "/x"]) == "VOLUME [/data /x]"
    assert history.copy("COPY", ["a", "b"], "/dst/", chown="1:1") == "COPY --chown=1:1 a b /dst/ # buildkit"


def test_go_durations():
    assert history._go_duration(30_000_000_000) == "30s"
    assert history._go_duration(90_000_000_000) == "1m30s"
    assert history._go_duration(7_200_000_000_000) == "2h0m0s"
    assert history._go_duration(1_500_000_000) == "1.5s"
    assert history._go_duration(250_000_000) == "250ms"
    assert history.healthcheck(["CMD", "true"], 30_000_000_000, 0, 0, 0, 3) == \
        "HEALTHCHECK &{[\"CMD\" \"true\"] \"30s\" \"0s\" \"0s\" \"0s\" '\\x03'}"
