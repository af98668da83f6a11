//! `cargo xtask`: developer tasks of cloudpods-rs (the alias lives in `.cargo/config.toml`).
//!
//! ```text
//! cargo xtask bench                     every benchmark
//! cargo xtask bench keystone            token validate/issue throughput, latency, aio RSS
//! cargo xtask bench glance              1 GiB image upload vs dd, server RSS (--size-mib N)
//! cargo xtask bench compute             scheduler and server-list at 10,000 hosts / 100,000 servers
//! cargo xtask bench gateway             apigateway's added latency over a direct region call
//! cargo xtask bench --duration 10       measure validation for 10 s instead of 5
//! ```
//! What is measured and how: see [`bench`], [`bench_glance`], [`bench_compute`] and [`bench_gateway`].

mod bench;
mod bench_compute;
mod bench_gateway;
mod bench_glance;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "cloudpods-rs developer tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a real `cloudpods aio` and print performance figures against the targets.
    Bench(bench::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Bench(a) => bench::run(a),
    }
}
