//! `ferrofab serve`: the daemon, its state directory and the management API, until SIGTERM
//! or SIGINT; SIGHUP reloads the configuration file through the engine and re-reads the
//! management API's TLS certificate and key.

use std::net::SocketAddr;
use std::path::PathBuf;

use target::housekeeping::Placement;
use target::state::{StateDir, DEFAULT_STATE_DIR};
use target::{Config, Daemon, TargetParams};
use tokio::signal::unix::{signal, SignalKind};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file, served as written at every start (the state directory is
    /// rewritten from it). Without it, the state directory's configuration is restored.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Where the running configuration (config.toml) and the management API tokens
    /// (admin.token, readonly.token) live; created (mode 0700) when missing.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Configuration file served when the state directory holds none yet (a first start);
    /// later starts restore the state directory's. Without it, the embedded default.
    #[arg(long, value_name = "PATH", conflicts_with = "config")]
    initial_config: Option<PathBuf>,
    /// Address of the management API (REST, `/api/v1/`).
    #[arg(long, default_value = "127.0.0.1:8080")]
    mgmt_listen: SocketAddr,
    /// Serve no management API.
    #[arg(long)]
    no_mgmt: bool,
    /// Serve the management API over HTTPS only, with this certificate chain (PEM, the
    /// server's certificate first); needs --mgmt-tls-key. SIGHUP re-reads both files.
    #[arg(
        long,
        value_name = "PATH",
        requires = "mgmt_tls_key",
        conflicts_with = "no_mgmt"
    )]
    mgmt_tls_cert: Option<PathBuf>,
    /// The private key of --mgmt-tls-cert (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[arg(long, value_name = "PATH", requires = "mgmt_tls_cert")]
    mgmt_tls_key: Option<PathBuf>,
    /// Take firmware updates (`POST /api/v1/firmware/update`) signed with this Ed25519
    /// public key (PEM, as `openssl pkey -pubout` writes it). Without it the image is only
    /// reported, and nothing is installed or rebooted.
    #[arg(long, value_name = "PATH")]
    firmware_key: Option<PathBuf>,
    /// Where update bundles are downloaded (incoming/) and staged for systemd-sysupdate
    /// (staging/) [default: <state-dir>/firmware]
    #[arg(long, value_name = "DIR")]
    firmware_dir: Option<PathBuf>,
    /// Where the ESP is mounted (its EFI/Linux/ holds the boot entries).
    #[arg(long, value_name = "DIR", default_value = target::firmware::DEFAULT_ESP)]
    firmware_esp: PathBuf,
    /// Serve the driver's software NVMe controller (1 GiB, 4 KiB blocks, completing every
    /// command at once and moving no data: reads return whatever the buffer held) as the
    /// nvme-vfio drive at this PCI address: a drive for benchmarks of the drive path on
    /// machines without one.
    #[cfg(feature = "model-drive")]
    #[arg(long, value_name = "PCI")]
    model_drive: Option<String>,
}

pub async fn run(args: ServeArgs) -> Result<(), String> {
    let state = StateDir::open(&args.state_dir).map_err(|e| e.to_string())?;
    let config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => match state.load().map_err(|e| e.to_string())? {
            Some(c) => {
                tracing::info!(state = %state.file().display(), "running configuration restored");
                c
            }
            None => match &args.initial_config {
                Some(path) => {
                    tracing::info!(config = %path.display(), "first start: initial configuration");
                    Config::load(path).map_err(|e| e.to_string())?
                }
                None => Config::default_config().map_err(|e| e.to_string())?,
            },
        },
    };
    let tokens = if args.no_mgmt {
        None
    } else {
        let seed = provisioned_admin_token()?;
        Some(
            mgmt::Tokens::load_or_create_seeded(state.path(), seed.as_deref())
                .map_err(|e| format!("management API tokens in {}: {e}", state.path().display()))?,
        )
    };
    let tls = match (&args.mgmt_tls_cert, &args.mgmt_tls_key) {
        (Some(cert), Some(key)) => Some(
            mgmt::MgmtTls::from_pem_files(cert, key)
                .map_err(|e| format!("management API TLS: {e}"))?,
        ),
        _ => None,
    };
    let token_dir = state.path().to_path_buf();
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("SIGHUP handler: {e}"))?;
    let reactor_cores = config.reactor.cores.clone();
    #[cfg(feature = "model-drive")]
    let daemon = match &args.model_drive {
        Some(pci) => {
            let settings =
                target::drives::DriveSettings::new(&config.drives, config.reactor.reactors());
            let drives = crate::model_drive::drives_with_model(pci, settings)?;
            Daemon::start_persistent_with_drives(config, TargetParams::default(), state, drives)
                .await
        }
        None => Daemon::start_persistent(config, TargetParams::default(), state).await,
    }
    .map_err(|e| e.to_string())?;
    #[cfg(not(feature = "model-drive"))]
    let daemon = Daemon::start_persistent(config, TargetParams::default(), state)
        .await
        .map_err(|e| e.to_string())?;
    // The management API, timers and blocking pool stay off the reactors' cores.
    match target::housekeeping::keep_off_reactor_cores(reactor_cores.as_deref()) {
        Ok(Placement::Moved { cpus, threads }) => {
            tracing::info!(
                ?cpus,
                threads,
                "housekeeping threads kept off the reactor cores"
            )
        }
        Ok(Placement::Shared) => tracing::warn!(
            "every allowed CPU runs a reactor: the management API shares their cores"
        ),
        Ok(Placement::Unpinned) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot move housekeeping threads off the reactor cores")
        }
    }
    let mgmt = match tokens {
        None => None,
        Some(tokens) => {
            let engine = daemon.engine().clone();
            let firmware = firmware(&args, &token_dir);
            let started =
                mgmt::start_with(engine, args.mgmt_listen, tokens, tls.clone(), firmware).await;
            match started {
                Ok(server) => {
                    tracing::info!(url = %server.url(), console = %server.console_url(),
                    admin_token = %token_dir.join(mgmt::auth::ADMIN_TOKEN_FILE).display(),
                    "management API serving");
                    Some(server)
                }
                Err(e) => {
                    daemon.shutdown().await;
                    return Err(format!("management API on {}: {e}", args.mgmt_listen));
                }
            }
        }
    };
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "ferrofab serving");
    crate::notify::ready(&format!("serving {} listener(s)", daemon.listeners().len()));
    let mut watchdog = crate::notify::Watchdog::from_env();
    let mut feed = tokio::time::interval(
        watchdog
            .as_ref()
            .map_or(std::time::Duration::from_secs(3600), |w| w.interval()),
    );
    loop {
        tokio::select! {
            _ = feed.tick(), if watchdog.is_some() => {
                if let Some(w) = watchdog.as_mut() {
                    feed_watchdog(w, &daemon);
                }
            }
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = hup.recv() => {
                if let Some(tls) = &tls {
                    reload_tls(tls);
                }
                reload_from(&daemon, args.config.as_ref()).await
            }
        }
    }
    crate::notify::stopping();
    // The management server holds the engine: stop it first, so the daemon can let go of
    // every namespace and hand its drives back.
    if let Some(server) = mgmt {
        server.shutdown().await;
    }
    daemon.shutdown().await;
    Ok(())
}

/// The firmware service of `--firmware-key`, `--firmware-dir` and `--firmware-esp`.
fn firmware(args: &ServeArgs, state_dir: &std::path::Path) -> target::firmware::Firmware {
    use target::firmware::{Firmware, FirmwareSettings, FIRMWARE_SUBDIR};
    let dir = args
        .firmware_dir
        .clone()
        .unwrap_or_else(|| state_dir.join(FIRMWARE_SUBDIR));
    let mut settings = FirmwareSettings::new(&dir, args.firmware_key.clone());
    settings.esp = args.firmware_esp.clone();
    Firmware::new(settings)
}

/// The systemd credential an operator may provision the admin token with (first start
/// only: an existing admin.token wins), e.g. `ImportCredential=ferrofab.admin-token`.
const ADMIN_TOKEN_CREDENTIAL: &str = "ferrofab.admin-token";

fn provisioned_admin_token() -> Result<Option<String>, String> {
    let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") else {
        return Ok(None);
    };
    let path = PathBuf::from(dir).join(ADMIN_TOKEN_CREDENTIAL);
    match std::fs::read_to_string(&path) {
        Ok(token) => Ok(Some(token)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("credential {}: {e}", path.display())),
    }
}

/// Ping systemd's watchdog when every reactor (NVMe/TCP and NVMe/RDMA) polled since the last
/// check; otherwise say which did not, and let the watchdog fire.
fn feed_watchdog(watchdog: &mut crate::notify::Watchdog, daemon: &Daemon) {
    let polls = daemon
        .reactor_samples()
        .into_iter()
        .chain(daemon.rdma_reactor_samples())
        .map(|s| s.busy_polls.wrapping_add(s.idle_polls))
        .collect();
    if let Err(stalled) = watchdog.check(polls) {
        tracing::error!(reactors = ?stalled.0, "reactors stopped polling: not feeding the watchdog");
    }
}

/// SIGHUP: re-read the management API's certificate and key (new connections get them); on
/// an error the old ones stay.
fn reload_tls(tls: &mgmt::MgmtTls) {
    match tls.reload() {
        Ok(()) => tracing::info!(
            cert = %tls.cert_path().display(),
            "SIGHUP: management API certificate reloaded"
        ),
        Err(e) => tracing::error!(
            error = %e,
            "SIGHUP: management API certificate not reloaded, serving the old one"
        ),
    }
}

/// SIGHUP: re-read the configuration file and apply its difference through the engine.
async fn reload_from(daemon: &Daemon, path: Option<&PathBuf>) {
    let Some(path) = path.cloned() else {
        tracing::warn!(
            "SIGHUP: no configuration file (serving the state directory's): change the running \
             state through the management API"
        );
        return;
    };
    let engine = daemon.engine().clone();
    // The engine may open backends: off the async workers.
    let result = tokio::task::spawn_blocking(move || {
        let config = Config::load(&path).map_err(|e| e.to_string())?;
        engine.reload(&config).map_err(|e| e.to_string())
    })
    .await;
    // Engine::reload applies the whole difference or nothing, and names every part it
    // cannot apply; it logs each applied action.
    match result {
        Ok(Ok(outcomes)) if outcomes.is_empty() => tracing::info!("SIGHUP: nothing changed"),
        Ok(Ok(outcomes)) => tracing::info!(changes = outcomes.len(), "SIGHUP: reload applied"),
        Ok(Err(e)) => tracing::error!(error = %e, "SIGHUP: reload refused, nothing changed"),
        Err(e) => tracing::error!(error = %e, "SIGHUP: reload task failed"),
    }
}
