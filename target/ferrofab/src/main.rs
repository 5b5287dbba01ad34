//! `ferrofab`: the NVMe-oF target daemon and host-side tools.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use target::Config;
use tracing_subscriber::EnvFilter;

mod baseline;
mod ctl;
mod drive;
mod host;
#[cfg(feature = "model-drive")]
mod model_drive;
mod notify;
mod perf;
mod serve;

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
    /// Serve NVMe/TCP and the management API: the configuration file, or without one the
    /// state directory's running configuration (first start: the embedded default, one
    /// 1 GiB RAM namespace with listener and discovery on 127.0.0.1:4420). Every change is
    /// persisted in the state directory. SIGHUP re-reads the file and applies its difference
    /// from the running state whole, or refuses it whole, naming what cannot change.
    Serve(serve::ServeArgs),
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
    /// Manage a running ferrofab over its management API: listeners, subsystems,
    /// namespaces, host allow-lists, controllers.
    Ctl(ctl::CtlArgs),
    #[command(flatten)]
    Host(host::HostCommand),
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        // A closed stderr (a log pipe that went away) loses log lines; reporting that on the
        // same stderr would panic the task that logged.
        .log_internal_errors(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let prefix = match cli.command {
        Command::Ctl(_) => "ferrofab ctl",
        _ => "ferrofab",
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{prefix}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::CheckConfig { config } => check_config(config),
            Command::Perf(args) => perf::run(args).await,
            Command::Baseline(args) => baseline::run(args),
            Command::Drive(args) => tokio::task::spawn_blocking(move || args.run())
                .await
                .map_err(|e| format!("drive task failed: {e}"))
                .and_then(|r| r),
            Command::Ctl(args) => ctl::run(args).await,
            Command::Host(cmd) => cmd.run().await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("{prefix}: {msg}");
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
