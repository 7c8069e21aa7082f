//! A Kubernetes API server in memory, for trying orgops without a cluster:
//! `cargo run --example dev-apiserver -- --port 6443 --kubeconfig ./kubeconfig`, then
//! `KUBECONFIG=./kubeconfig kubectl apply -f crds/ -f deploy/examples/`.

use clap::Parser;

/// Options.
#[derive(Parser)]
struct Args {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 6443)]
    port: u16,
    /// Where to write a kubeconfig for it.
    #[arg(long, default_value = "kubeconfig")]
    kubeconfig: std::path::PathBuf,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let server = test_apiserver::TestApiServer::start_on(args.port).await?;
    server.write_kubeconfig(&args.kubeconfig)?;
    println!("Kubernetes API (in memory) at {}", server.url);
    println!("kubeconfig written to {}", args.kubeconfig.display());
    println!(
        "try: KUBECONFIG={} kubectl apply -f crds/",
        args.kubeconfig.display()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
