# orgops: a static binary on a distroless base, running as non-root.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools cmake && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin orgops \
 && cp target/x86_64-unknown-linux-musl/release/orgops /orgops

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /orgops /usr/local/bin/orgops
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/orgops"]
CMD ["run"]
