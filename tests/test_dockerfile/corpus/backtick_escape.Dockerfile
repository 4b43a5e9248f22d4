# escape=`
FROM mcr.microsoft.com/windows/servercore
WORKDIR C:\app
RUN dir c:\ `
    && echo done
COPY . C:\app\
ENV PATH=C:\tools;C:\bin `
    OTHER=x
RUN echo `` not continued
