# probefarmd in a container. Build:  docker build -t probefarm .
# Run (USB passthrough and the rest: deploy/README.md):
#   docker run -d --name probefarmd -p 8080:8080 --device /dev/bus/usb \
#     -v probefarm-data:/var/lib/probefarm probefarm

# Build stage: the same steps as a developer's checkout, scripts/setup then the CMake build
# of scripts/test, so the image is built exactly as the tested tree is.
FROM debian:12 AS build
WORKDIR /src
# The source folders one by one rather than `COPY . .`, so that a developer's build trees
# (build/, build-*/, their CMakeCache.txt) never reach the image's build.
COPY CMakeLists.txt openapi.yaml .clang-format ./
COPY scripts scripts
COPY firmware firmware
COPY sim sim
COPY probe probe
COPY protocol protocol
COPY flash flash
COPY server server
COPY cli cli
COPY web web
COPY tests tests
COPY bench bench
RUN scripts/setup && rm -rf /var/lib/apt/lists/*
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build build -j"$(nproc)"

# Run stage: only the shared libraries `ldd build/bin/probefarmd` and `ldd build/bin/probefarm`
# name beyond what debian:12-slim has (libc, libstdc++, libgcc_s): libusb (which brings
# libudev) and SQLite.
FROM debian:12-slim
LABEL org.opencontainers.image.title="probefarmd" org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update \
 && apt-get install -y --no-install-recommends libusb-1.0-0 libsqlite3-0 \
 && rm -rf /var/lib/apt/lists/*
# The same user and group layout as deploy/probefarm.sysusers. gid 46 is Debian's plugdev:
# with --device /dev/bus/usb the nodes keep the host's group ids, and the host's
# 60-probefarm.rules give the probes to plugdev.
# uid/gid 999 fixed, because deploy/k8s/daemonset.yaml and hostPath data dirs name them.
RUN groupadd --system --gid 999 probefarm \
 && useradd --system --uid 999 --gid probefarm --groups plugdev \
      --home-dir /var/lib/probefarm --shell /usr/sbin/nologin probefarm \
 && install -d -o probefarm -g probefarm -m 0700 /var/lib/probefarm
COPY --from=build /src/build/bin/probefarmd /src/build/bin/probefarm /usr/local/bin/
COPY --from=build /src/web /usr/local/share/probefarm/web
COPY deploy/probefarmd.json /etc/probefarm/probefarmd.json
COPY LICENSE /usr/share/doc/probefarm/LICENSE
USER probefarm
VOLUME /var/lib/probefarm
EXPOSE 8080
# 0.0.0.0 inside the container: the port is published by the container runtime, and the
# Host check accepts localhost:8080 and 127.0.0.1:8080. Clients that reach it by another
# name need that name in allowed_hosts (mount your own /etc/probefarm/probefarmd.json).
ENTRYPOINT ["/usr/local/bin/probefarmd", "--config", "/etc/probefarm/probefarmd.json", \
            "--data-dir", "/var/lib/probefarm"]
CMD ["--listen", "0.0.0.0:8080"]
