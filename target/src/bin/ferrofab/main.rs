//! `ferrofab`: the NVMe-oF target daemon and host-side tools.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use target::{Config, Daemon, TargetParams};
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

mod baseline;
mod drive;
mod host;
mod perf;

#[derive(Parser)]
#[command(
    name = "ferrofab",
    version,
    about = "NVMe-oF target for EBOF appliances"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve NVMe/TCP: the configuration file's subsystems, or the embedded default
    /// (one 1 GiB RAM namespace, listener and discovery on 127.0.0.1:4420). SIGHUP reloads
    /// the file: its difference from the running state (subsystems, namespaces, allow-lists)
    /// is applied whole, or refused whole with a message naming what cannot change.
    Serve {
        /// TOML configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and print what it would serve.
    CheckConfig {
        /// TOML configuration file.
        config: PathBuf,
    },
    /// Polled NVMe/TCP load generator (like spdk_nvme_perf): IOPS, bandwidth, latency.
    Perf(perf::PerfArgs),
    /// Measure loopback TCP streaming with a memcpy on each end (target and host side), and
    /// plain memcpy bandwidth: the ceiling for large reads over NVMe/TCP on this machine.
    Baseline(baseline::BaselineArgs),
    /// Use a local NVMe drive through ferrofab's own drivers (VFIO or io_uring passthrough):
    /// identify, pattern write/verify, zones, and a polled load generator.
    Drive(drive::DriveArgs),
    #[command(flatten)]
    Host(host::HostCommand),
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrofab: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { config } => serve(config).await,
            Command::CheckConfig { config } => check_config(config),
            Command::Perf(args) => perf::run(args).await,
            Command::Baseline(args) => baseline::run(args),
            Command::Drive(args) => tokio::task::spawn_blocking(move || args.run())
                .await
                .map_err(|e| format!("drive task failed: {e}"))
                .and_then(|r| r),
            Command::Host(cmd) => cmd.run().await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("ferrofab: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn load(config: Option<PathBuf>) -> Result<Config, String> {
    match config {
        Some(path) => Config::load(&path).map_err(|e| e.to_string()),
        None => Config::default_config().map_err(|e| e.to_string()),
    }
}

fn check_config(path: PathBuf) -> Result<(), String> {
    let config = load(Some(path))?;
    for l in &config.listener {
        println!("listener {} {}", l.transport, l.address);
    }
    for s in &config.subsystem {
        println!("subsystem {}", s.nqn);
        for n in &s.namespace {
            println!(
                "  namespace {} {:?} block_size {}",
                n.nsid.unwrap_or(0),
                n.backend,
                n.block_size()
            );
        }
    }
    Ok(())
}

async fn serve(config: Option<PathBuf>) -> Result<(), String> {
    let path = config;
    let config = load(path.clone())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("SIGHUP handler: {e}"))?;
    let daemon = Daemon::start(config, TargetParams::default())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "ferrofab serving");
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = hup.recv() => reload_from(&daemon, path.as_ref()),
        }
    }
    daemon.shutdown().await;
    Ok(())
}

/// SIGHUP: re-read the configuration file and apply what can change at run time.
fn reload_from(daemon: &Daemon, path: Option<&PathBuf>) {
    let Some(path) = path else {
        tracing::warn!("SIGHUP: serving the embedded default, nothing to reload");
        return;
    };
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: configuration not reloaded");
            return;
        }
    };
    // Engine::reload applies the whole difference or nothing, and names every part it
    // cannot apply.
    match daemon.reload(&config) {
        Ok(outcomes) if outcomes.is_empty() => tracing::info!("SIGHUP: nothing changed"),
        // The engine logs each applied action.
        Ok(outcomes) => tracing::info!(changes = outcomes.len(), "SIGHUP: reload applied"),
        Err(e) => tracing::error!(error = %e, "SIGHUP: reload refused, nothing changed"),
    }
}
