//! `ferrofab ctl`: the operator's CLI over the management API (the counterpart of SPDK's
//! rpc.py and nvmetcli). Each command is one request; `--json` prints the server's answer,
//! otherwise a table or a few lines. A refused request prints the server's error (status,
//! code, message, field) and exits 1.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use mgmt::outcome::ZoneFaultState;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

mod client;
mod firmware;
mod pool;
mod pretty;
mod show;

use client::{segment, Client};

#[derive(Args)]
pub struct CtlArgs {
    /// Management API base URL, http:// or https:// [env: FERROFAB_API] [default:
    /// http://127.0.0.1:8080]
    #[arg(long, global = true, value_name = "URL")]
    api: Option<String>,
    /// PEM file of a CA certificate (or the server's self-signed one) to trust for an
    /// https:// API, besides the system's CAs [env: FERROFAB_CA_CERT]
    #[arg(long, global = true, value_name = "PATH")]
    ca_cert: Option<PathBuf>,
    /// File holding the bearer token (default: <state-dir>/admin.token, or the token in
    /// FERROFAB_TOKEN when neither this nor --state-dir is given).
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "state_dir")]
    token_file: Option<PathBuf>,
    /// The daemon's state directory, where admin.token lives [default: /var/lib/ferrofab]
    #[arg(long, global = true, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Print the server's JSON answer (indented) instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Version, uptime, subsystem and controller counts.
    System,
    /// NVMe/TCP and NVMe/RDMA listeners: the ports of the discovery log.
    #[command(subcommand)]
    Listener(ListenerCmd),
    /// NVM subsystems.
    #[command(subcommand)]
    Subsystem(SubsystemCmd),
    /// A subsystem's namespaces (connected hosts are told of changes).
    #[command(subcommand)]
    Namespace(NamespaceCmd),
    /// A subsystem's host allow-list (a removed host is disconnected at once).
    #[command(subcommand)]
    Host(HostCmd),
    /// Connected controllers (I/O and discovery).
    #[command(subcommand)]
    Controller(ControllerCmd),
    /// The appliance image: versions, root slots, boot entries; signed updates and the
    /// reboot into them.
    Firmware(firmware::FirmwareArgs),
    /// Pools of zoned drives (the layout engine) and the volumes on them.
    #[command(subcommand)]
    Pool(pool::PoolCmd),
}

#[derive(Subcommand)]
enum ListenerCmd {
    /// The listeners: port ID, transport, configured and bound address.
    List,
    /// Open a listener (IP:port; port 0 picks a free one).
    Add {
        address: String,
        /// tcp or rdma (NVMe/RDMA needs rdma-core on the box).
        #[arg(long, default_value = "tcp")]
        transport: String,
    },
    /// Close a listener (by its configured address); its controllers are disconnected.
    Remove {
        address: String,
        /// tcp or rdma: needed only when the address has a listener of each.
        #[arg(long)]
        transport: Option<String>,
    },
}

#[derive(Subcommand)]
enum SubsystemCmd {
    /// Every subsystem.
    List,
    /// One subsystem.
    Show { nqn: String },
    /// Create a subsystem. Without --host or --allow-any-host its allow-list is empty: no
    /// host may connect until one is added (`ctl host add`).
    Add {
        nqn: String,
        /// Serial number (<= 20 ASCII characters; default: derived from the NQN).
        #[arg(long)]
        serial: Option<String>,
        /// Model number (<= 40 ASCII characters).
        #[arg(long)]
        model: Option<String>,
        /// Firmware revision (<= 8 ASCII characters).
        #[arg(long)]
        firmware: Option<String>,
        /// Admit any host (no allow-list).
        #[arg(long, conflicts_with = "host")]
        allow_any_host: bool,
        /// A host NQN to admit (repeat for more).
        #[arg(long, value_name = "HOSTNQN")]
        host: Vec<String>,
        /// A configured listener address to be reachable on (repeat; default: all).
        #[arg(long, value_name = "ADDR")]
        listener: Vec<String>,
    },
    /// Change a subsystem's identity (only while no host is connected) or the listeners it
    /// is reachable on (controllers that came through a dropped one are disconnected).
    Set {
        nqn: String,
        /// Serial number (<= 20 ASCII characters).
        #[arg(long)]
        serial: Option<String>,
        /// Model number (<= 40 ASCII characters).
        #[arg(long)]
        model: Option<String>,
        /// Firmware revision (<= 8 ASCII characters).
        #[arg(long)]
        firmware: Option<String>,
        /// The configured listener addresses to be reachable on, comma-separated.
        #[arg(long, value_name = "ADDR,..", value_delimiter = ',', num_args = 1..)]
        listeners: Option<Vec<String>>,
        /// Be reachable on every listener.
        #[arg(long, conflicts_with = "listeners")]
        all_listeners: bool,
    },
    /// Remove a subsystem; its controllers are disconnected.
    Remove { nqn: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    Ram,
    Null,
    File,
    NvmeUring,
    NvmeVfio,
    /// A volume of a pool (`ferrofab ctl pool volume-create`).
    Volume,
}

#[derive(Subcommand)]
enum NamespaceCmd {
    /// A subsystem's namespaces.
    List { nqn: String },
    /// One namespace.
    Show { nqn: String, nsid: u32 },
    /// Add a namespace.
    Add(NamespaceAdd),
    /// Grow a namespace (ram, file, null) to SIZE (bytes or with a unit: 128MiB, 2GiB);
    /// connected hosts see the new capacity without a rescan. Shrinking is refused.
    Resize {
        nqn: String,
        nsid: u32,
        size: String,
    },
    /// Remove a namespace.
    Remove { nqn: String, nsid: u32 },
    /// Fault injection on a zoned-ram namespace: fail the zone starting at ZSLBA (in blocks)
    /// to read-only or offline, as failing media would; hosts find it in the Changed Zone
    /// List. A backing file keeps it.
    FailZone {
        nqn: String,
        nsid: u32,
        zslba: u64,
        #[arg(long, value_enum)]
        state: ZoneStateArg,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ZoneStateArg {
    ReadOnly,
    Offline,
}

#[derive(Args)]
struct NamespaceAdd {
    nqn: String,
    #[arg(long)]
    backend: BackendArg,
    /// Bytes or with a unit (64MiB, 1GiB, 10GB): ram and null need it; file creates or
    /// extends its file to it; drives take their size from the drive.
    #[arg(long)]
    size: Option<String>,
    /// NSID, 1..=1024 (default: the lowest free one).
    #[arg(long)]
    nsid: Option<u32>,
    /// file: the file or block device; nvme-uring: the generic char device (/dev/ngXnY).
    #[arg(long)]
    path: Option<String>,
    /// 512 (default) or 4096 (not for drives).
    #[arg(long)]
    block_size: Option<u32>,
    /// nvme-vfio: the controller's PCI address.
    #[arg(long, value_name = "ADDR")]
    pci: Option<String>,
    /// nvme-vfio: the namespace of the drive (default 1).
    #[arg(long, value_name = "N")]
    drive_nsid: Option<u32>,
    /// nvme-vfio: move the device to vfio-pci (and back when the daemon exits).
    #[arg(long)]
    bind: bool,
    /// nvme-uring: poll for completions (the server's default); --iopoll=false to not.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    iopoll: Option<bool>,
    /// volume: the pool and the volume of it (`--volume POOL/VOLUME`); the namespace takes
    /// the volume's size and block size.
    #[arg(long, value_name = "POOL/VOLUME")]
    volume: Option<String>,
}

#[derive(Subcommand)]
enum HostCmd {
    /// Who may connect to a subsystem.
    List { nqn: String },
    /// Admit a host (the subsystem must have an allow-list).
    Add { nqn: String, hostnqn: String },
    /// Revoke a host: its controllers close at once, reconnects are refused.
    Remove { nqn: String, hostnqn: String },
    /// Replace the allow-list; hosts no longer on it are disconnected.
    Set {
        nqn: String,
        /// Admit any host (drop the allow-list).
        #[arg(long, conflicts_with = "hosts")]
        any: bool,
        /// The host NQNs to admit.
        #[arg(required_unless_present = "any", value_name = "HOSTNQN")]
        hosts: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ControllerCmd {
    /// Every live controller.
    List,
    /// One controller.
    Show { cntlid: u16 },
    /// Disconnect a controller (the host may reconnect).
    Disconnect { cntlid: u16 },
}

/// How an answer is printed without `--json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Render {
    System,
    Listeners,
    Listener,
    Subsystems,
    Subsystem,
    Namespaces,
    Namespace,
    Hosts,
    Controllers,
    Controller,
    Outcome,
    Firmware,
    FirmwareJob,
    Pools,
    Pool,
    Volume,
}

/// One API call: method, path under `/api/v1/`, body, and how to print the answer.
#[derive(Debug, PartialEq)]
struct Request {
    method: Method,
    path: String,
    body: Option<Value>,
    render: Render,
    /// Follow the firmware job the answer starts (`ctl firmware update --wait`).
    wait: bool,
}

fn get(path: String, render: Render) -> Result<Request, String> {
    Ok(Request {
        method: Method::GET,
        path,
        body: None,
        render,
        wait: false,
    })
}

fn with_body(method: Method, path: String, body: Value, render: Render) -> Result<Request, String> {
    Ok(Request {
        method,
        path,
        body: Some(body),
        render,
        wait: false,
    })
}

fn delete(path: String) -> Result<Request, String> {
    Ok(Request {
        method: Method::DELETE,
        path,
        body: None,
        render: Render::Outcome,
        wait: false,
    })
}

fn sub(nqn: &str) -> String {
    format!("subsystems/{}", segment(nqn))
}

fn request(command: CtlCommand) -> Result<Request, String> {
    match command {
        CtlCommand::System => get("system".into(), Render::System),
        CtlCommand::Listener(cmd) => match cmd {
            ListenerCmd::List => get("listeners".into(), Render::Listeners),
            ListenerCmd::Add { address, transport } => with_body(
                Method::POST,
                "listeners".into(),
                json!({"transport": transport, "address": address}),
                Render::Listener,
            ),
            ListenerCmd::Remove { address, transport } => {
                let query =
                    transport.map_or_else(String::new, |t| format!("?transport={}", segment(&t)));
                delete(format!("listeners/{}{query}", segment(&address)))
            }
        },
        CtlCommand::Subsystem(cmd) => match cmd {
            SubsystemCmd::List => get("subsystems".into(), Render::Subsystems),
            SubsystemCmd::Show { nqn } => get(sub(&nqn), Render::Subsystem),
            SubsystemCmd::Add {
                nqn,
                serial,
                model,
                firmware,
                allow_any_host,
                host,
                listener,
            } => {
                let mut body = json!({"nqn": nqn});
                for (key, value) in [("serial", serial), ("model", model), ("firmware", firmware)] {
                    if let Some(v) = value {
                        body[key] = json!(v);
                    }
                }
                body["allowed_hosts"] = if allow_any_host {
                    Value::Null
                } else {
                    json!(host)
                };
                if !listener.is_empty() {
                    body["listeners"] = json!(listener);
                }
                with_body(Method::POST, "subsystems".into(), body, Render::Subsystem)
            }
            SubsystemCmd::Set {
                nqn,
                serial,
                model,
                firmware,
                listeners,
                all_listeners,
            } => {
                let mut body = json!({});
                for (key, value) in [("serial", serial), ("model", model), ("firmware", firmware)] {
                    if let Some(v) = value {
                        body[key] = json!(v);
                    }
                }
                if all_listeners {
                    body["listeners"] = Value::Null;
                } else if let Some(l) = listeners {
                    body["listeners"] = json!(l);
                }
                if body.as_object().is_some_and(|o| o.is_empty()) {
                    return Err("nothing to change: give --serial, --model, --firmware, \
                                --listeners or --all-listeners"
                        .into());
                }
                with_body(Method::PATCH, sub(&nqn), body, Render::Outcome)
            }
            SubsystemCmd::Remove { nqn } => delete(sub(&nqn)),
        },
        CtlCommand::Namespace(cmd) => match cmd {
            NamespaceCmd::List { nqn } => {
                get(format!("{}/namespaces", sub(&nqn)), Render::Namespaces)
            }
            NamespaceCmd::Show { nqn, nsid } => get(
                format!("{}/namespaces/{nsid}", sub(&nqn)),
                Render::Namespace,
            ),
            NamespaceCmd::Add(add) => {
                let path = format!("{}/namespaces", sub(&add.nqn));
                with_body(Method::POST, path, namespace_body(add)?, Render::Namespace)
            }
            NamespaceCmd::Resize { nqn, nsid, size } => with_body(
                Method::PATCH,
                format!("{}/namespaces/{nsid}", sub(&nqn)),
                json!({"size": size}),
                Render::Namespace,
            ),
            NamespaceCmd::Remove { nqn, nsid } => {
                delete(format!("{}/namespaces/{nsid}", sub(&nqn)))
            }
            NamespaceCmd::FailZone {
                nqn,
                nsid,
                zslba,
                state,
            } => with_body(
                Method::POST,
                format!("{}/namespaces/{nsid}/zone-faults", sub(&nqn)),
                // The API's own type names the state, so the spelling is its serde one.
                json!({"zslba": zslba, "state": match state {
                    ZoneStateArg::ReadOnly => ZoneFaultState::ReadOnly,
                    ZoneStateArg::Offline => ZoneFaultState::Offline,
                }}),
                Render::Outcome,
            ),
        },
        CtlCommand::Host(cmd) => match cmd {
            HostCmd::List { nqn } => get(format!("{}/hosts", sub(&nqn)), Render::Hosts),
            HostCmd::Add { nqn, hostnqn } => with_body(
                Method::POST,
                format!("{}/hosts", sub(&nqn)),
                json!({"host": hostnqn}),
                Render::Outcome,
            ),
            HostCmd::Remove { nqn, hostnqn } => {
                delete(format!("{}/hosts/{}", sub(&nqn), segment(&hostnqn)))
            }
            HostCmd::Set { nqn, any, hosts } => with_body(
                Method::PUT,
                format!("{}/hosts", sub(&nqn)),
                json!({"hosts": if any { Value::Null } else { json!(hosts) }}),
                Render::Outcome,
            ),
        },
        CtlCommand::Controller(cmd) => match cmd {
            ControllerCmd::List => get("controllers".into(), Render::Controllers),
            ControllerCmd::Show { cntlid } => {
                get(format!("controllers/{cntlid}"), Render::Controller)
            }
            ControllerCmd::Disconnect { cntlid } => delete(format!("controllers/{cntlid}")),
        },
        CtlCommand::Firmware(args) => firmware::request(args),
        CtlCommand::Pool(cmd) => pool::request(cmd),
    }
}

/// The JSON of `ctl namespace add`: the backend's own options go into its object, and each
/// option is refused with a backend it does not belong to.
fn namespace_body(add: NamespaceAdd) -> Result<Value, String> {
    let only = |flag: &str, backend: &str| format!("{flag} is only for --backend {backend}");
    if add.backend != BackendArg::NvmeVfio {
        if add.pci.is_some() {
            return Err(only("--pci", "nvme-vfio"));
        }
        if add.drive_nsid.is_some() {
            return Err(only("--drive-nsid", "nvme-vfio"));
        }
        if add.bind {
            return Err(only("--bind", "nvme-vfio"));
        }
    }
    if add.backend != BackendArg::NvmeUring && add.iopoll.is_some() {
        return Err(only("--iopoll", "nvme-uring"));
    }
    if add.backend != BackendArg::Volume && add.volume.is_some() {
        return Err(only("--volume", "volume"));
    }
    let mut path = add.path;
    let backend = match add.backend {
        BackendArg::Ram => json!("ram"),
        BackendArg::Null => json!("null"),
        BackendArg::File => json!("file"),
        BackendArg::NvmeUring => {
            let device = path
                .take()
                .ok_or("--backend nvme-uring needs --path /dev/ngXnY")?;
            let mut b = json!({"kind": "nvme-uring", "path": device});
            if let Some(poll) = add.iopoll {
                b["iopoll"] = json!(poll);
            }
            b
        }
        BackendArg::NvmeVfio => {
            let pci = add
                .pci
                .ok_or("--backend nvme-vfio needs --pci DOMAIN:BUS:DEV.FN")?;
            let mut b = json!({"kind": "nvme-vfio", "pci": pci, "bind": add.bind});
            if let Some(n) = add.drive_nsid {
                b["nsid"] = json!(n);
            }
            b
        }
        BackendArg::Volume => {
            let named = add
                .volume
                .ok_or("--backend volume needs --volume POOL/VOLUME")?;
            let (pool, volume) = named
                .split_once('/')
                .filter(|(p, v)| !p.is_empty() && !v.is_empty())
                .ok_or_else(|| format!("--volume {named}: expected POOL/VOLUME"))?;
            json!({"kind": "volume", "pool": pool, "volume": volume})
        }
    };
    let mut body = json!({"backend": backend});
    if let Some(n) = add.nsid {
        body["nsid"] = json!(n);
    }
    if let Some(s) = add.size {
        body["size"] = json!(s);
    }
    if let Some(p) = path {
        body["path"] = json!(p);
    }
    if let Some(b) = add.block_size {
        body["block_size"] = json!(b);
    }
    Ok(body)
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| {
        format!("the server's answer is not what this ferrofab ctl expects ({e}); try --json")
    })
}

fn render(render: Render, bytes: &[u8]) -> Result<String, String> {
    Ok(match render {
        Render::System => show::system(&parse(bytes)?),
        Render::Listeners => show::listeners(&parse::<Vec<_>>(bytes)?),
        Render::Listener => show::listener(&parse(bytes)?),
        Render::Subsystems => show::subsystems(&parse::<Vec<_>>(bytes)?),
        Render::Subsystem => show::subsystem(&parse(bytes)?),
        Render::Namespaces => show::namespaces(&parse::<Vec<_>>(bytes)?),
        Render::Namespace => show::namespace(&parse(bytes)?),
        Render::Hosts => show::hosts(&parse(bytes)?),
        Render::Controllers => show::controllers(&parse::<Vec<_>>(bytes)?),
        Render::Controller => show::controller(&parse(bytes)?),
        Render::Outcome => show::outcome(&parse(bytes)?),
        Render::Firmware => firmware::view(&parse(bytes)?),
        Render::FirmwareJob => firmware::started(&parse(bytes)?),
        Render::Pools => pool::list(&parse::<Vec<_>>(bytes)?),
        Render::Pool => pool::view(&parse(bytes)?),
        Render::Volume => pool::volume(&parse(bytes)?),
    })
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub async fn run(args: CtlArgs) -> Result<(), String> {
    let req = request(args.command)?;
    let api = args
        .api
        .or_else(|| env("FERROFAB_API"))
        .unwrap_or_else(|| client::DEFAULT_API.to_string());
    let base = client::base_url(&api)?;
    let (token, source) = client::token(
        args.token_file.as_deref(),
        args.state_dir.as_deref(),
        std::env::var("FERROFAB_TOKEN").ok(),
    )?;
    let roots = match args
        .ca_cert
        .or_else(|| env("FERROFAB_CA_CERT").map(PathBuf::from))
    {
        Some(path) => client::ca_certificates(&path)?,
        None => Vec::new(),
    };
    let client = Client::new(base, token, source, roots)?;
    let answer = client
        .call(req.method, &req.path, req.body.as_ref())
        .await?;
    if req.wait {
        return firmware::wait(&client, &answer, args.json).await;
    }
    let text = if args.json {
        pretty::pretty(&answer)?
    } else {
        render(req.render, &answer)?
    };
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests;
