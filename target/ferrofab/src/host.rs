//! Host-side verbs of the `ferrofab` binary, built on the in-tree NVMe/TCP initiator:
//! `discover`, `identify` and `io` (read / write / verify with a reproducible pattern).

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use fabric::initiator::controller::Controller;
use fabric::initiator::discovery::discover;
use fabric::initiator::HostOptions;
use nvme::log_page::{
    AddressFamily, RdmaCms, RdmaProviderType, RdmaQpType, SubsystemType, TransportType,
};

const DEFAULT_PORT: u16 = 4420;

#[derive(Args, Clone)]
pub struct HostArgs {
    /// Host NQN to connect as (default: a random UUID-based NQN).
    #[arg(long)]
    hostnqn: Option<String>,
    /// Request NVMe/TCP header digests.
    #[arg(long)]
    hdgst: bool,
    /// Request NVMe/TCP data digests.
    #[arg(long)]
    ddgst: bool,
}

impl HostArgs {
    fn options(&self, io_queues: u16) -> HostOptions {
        let mut o = HostOptions::default();
        if let Some(n) = &self.hostnqn {
            o.hostnqn = n.clone();
        }
        o.header_digest = self.hdgst;
        o.data_digest = self.ddgst;
        o.io_queues = io_queues;
        o
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum IoOp {
    /// Write the pattern for SEED to the range.
    Write,
    /// Read the range and print a hex dump of the first block.
    Read,
    /// Read the range and check it holds the pattern for SEED.
    Verify,
}

#[derive(Subcommand)]
pub enum HostCommand {
    /// Read the discovery log of a target (ADDR is IP[:PORT], port 4420 by default).
    Discover {
        addr: String,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Print Identify Controller and Identify Namespace fields of a subsystem.
    Identify {
        addr: String,
        /// Subsystem NQN.
        #[arg(long)]
        nqn: String,
        /// Only this namespace (default: every active namespace).
        #[arg(long)]
        nsid: Option<u32>,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Write, read or verify blocks of a namespace.
    Io {
        addr: String,
        op: IoOp,
        #[arg(long)]
        nqn: String,
        #[arg(long, default_value_t = 1)]
        nsid: u32,
        /// First LBA.
        #[arg(long, default_value_t = 0)]
        lba: u64,
        /// Number of logical blocks.
        #[arg(long, default_value_t = 8)]
        blocks: u32,
        /// Pattern seed for write and verify.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Set FUA on writes.
        #[arg(long)]
        fua: bool,
        #[command(flatten)]
        host: HostArgs,
    },
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
        .map_err(|_| format!("{s:?} is not IP[:PORT]"))
}

/// The reproducible content of one block: xorshift64* seeded by (seed, lba).
pub fn pattern_block(seed: u64, lba: u64, block_size: usize) -> Vec<u8> {
    let mut x = seed ^ lba.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491_4f6c_dd1d;
    let mut out = Vec::with_capacity(block_size);
    while out.len() < block_size {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(block_size);
    out
}

impl HostCommand {
    pub async fn run(self) -> Result<(), String> {
        match self {
            HostCommand::Discover { addr, host } => {
                let addr = parse_addr(&addr)?;
                let log = discover(addr, host.options(0))
                    .await
                    .map_err(|e| format!("discovery at {addr}: {e}"))?;
                println!(
                    "Discovery Log: genctr {} records {}",
                    log.genctr,
                    log.records.len()
                );
                for (i, e) in log.records.iter().enumerate() {
                    let subtype = match e.subtype {
                        SubsystemType::Referral => "referral",
                        SubsystemType::Nvme => "nvme subsystem",
                        SubsystemType::CurrentDiscovery => "current discovery subsystem",
                        SubsystemType::Unknown(_) => "unknown",
                    };
                    let trtype = match e.trtype {
                        TransportType::Tcp => "tcp",
                        TransportType::Rdma => "rdma",
                        _ => "other",
                    };
                    let adrfam = if e.adrfam == AddressFamily::Ipv6 {
                        "ipv6"
                    } else {
                        "ipv4"
                    };
                    println!("=====Discovery Log Entry {i}======");
                    println!("trtype:  {trtype}");
                    println!("adrfam:  {adrfam}");
                    println!("subtype: {subtype}");
                    println!("treq:    {:#x}", e.treq);
                    println!("portid:  {}", e.portid);
                    println!("trsvcid: {}", e.trsvcid);
                    println!("subnqn:  {}", e.subnqn);
                    println!("traddr:  {}", e.traddr);
                    // NVMe/RDMA 1.0 Figure 3, as nvme-cli prints it.
                    if e.trtype == TransportType::Rdma {
                        let rdma = e.rdma();
                        println!("rdma_prtype: {}", rdma_prtype(rdma.prtype));
                        println!("rdma_qptype: {}", rdma_qptype(rdma.qptype));
                        println!("rdma_cms:    {}", rdma_cms(rdma.cms));
                        println!("rdma_pkey: {:#06x}", rdma.pkey);
                    }
                }
                Ok(())
            }
            HostCommand::Identify {
                addr,
                nqn,
                nsid,
                host,
            } => {
                let addr = parse_addr(&addr)?;
                let ctrl = Controller::connect_admin_only(addr, &nqn, host.options(0))
                    .await
                    .map_err(|e| format!("connect to {nqn} at {addr}: {e}"))?;
                let id = ctrl.identify();
                println!("cntlid  : {}", id.cntlid());
                println!("sn      : {}", id.serial());
                println!("mn      : {}", id.model());
                println!("fr      : {}", id.firmware());
                println!("ver     : {:#010x}", id.ver());
                println!("mdts    : {}", id.mdts());
                println!("nn      : {}", id.nn());
                println!("subnqn  : {}", id.subnqn());
                println!("ioccsz  : {}", id.ioccsz());
                let nsids = match nsid {
                    Some(n) => vec![n],
                    None => ctrl.active_namespaces().await.map_err(|e| e.to_string())?,
                };
                for n in nsids {
                    let ns = ctrl
                        .identify_namespace(n)
                        .await
                        .map_err(|e| format!("identify namespace {n}: {e}"))?;
                    let nsze = u64::from_le_bytes(ns[0..8].try_into().unwrap_or([0; 8]));
                    let bs = ctrl.block_size(n).await.map_err(|e| e.to_string())?;
                    println!("namespace {n}: nsze {nsze} blocks of {bs} bytes");
                    for (kind, value) in ctrl.ns_descriptors(n).await.map_err(|e| e.to_string())? {
                        let name = match kind {
                            1 => "eui64",
                            2 => "nguid",
                            3 => "uuid",
                            4 => "csi",
                            _ => "other",
                        };
                        let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
                        println!("  {name}: {hex}");
                    }
                }
                ctrl.shutdown().await.map_err(|e| e.to_string())
            }
            HostCommand::Io {
                addr,
                op,
                nqn,
                nsid,
                lba,
                blocks,
                seed,
                fua,
                host,
            } => {
                let addr = parse_addr(&addr)?;
                let ctrl = Controller::connect(addr, &nqn, host.options(1))
                    .await
                    .map_err(|e| format!("connect to {nqn} at {addr}: {e}"))?;
                let bs = ctrl.block_size(nsid).await.map_err(|e| e.to_string())? as usize;
                let result = run_io(&ctrl, op, nsid, lba, blocks, seed, fua, bs).await;
                ctrl.shutdown().await.map_err(|e| e.to_string())?;
                result
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_io(
    ctrl: &Controller,
    op: IoOp,
    nsid: u32,
    lba: u64,
    blocks: u32,
    seed: u64,
    fua: bool,
    bs: usize,
) -> Result<(), String> {
    let expected = || -> Vec<u8> {
        (0..u64::from(blocks))
            .flat_map(|i| pattern_block(seed, lba + i, bs))
            .collect()
    };
    match op {
        IoOp::Write => {
            let c = ctrl
                .write(1, nsid, lba, Bytes::from(expected()), fua)
                .await
                .map_err(|e| e.to_string())?;
            if !c.status().is_success() {
                return Err(format!("write failed: {}", c.status()));
            }
            println!("wrote {blocks} blocks at LBA {lba} (seed {seed})");
        }
        IoOp::Read | IoOp::Verify => {
            let c = ctrl
                .read(1, nsid, lba, blocks)
                .await
                .map_err(|e| e.to_string())?;
            if !c.status().is_success() {
                return Err(format!("read failed: {}", c.status()));
            }
            if matches!(op, IoOp::Verify) {
                let want = expected();
                if let Some(pos) = c.data.iter().zip(&want).position(|(a, b)| a != b) {
                    return Err(format!(
                        "verify failed: first mismatch at LBA {} byte {}",
                        lba + (pos / bs) as u64,
                        pos % bs
                    ));
                }
                if c.data.len() != want.len() {
                    return Err(format!("verify failed: read {} bytes", c.data.len()));
                }
                println!("verified {blocks} blocks at LBA {lba} (seed {seed})");
            } else {
                for (i, row) in c.data.chunks(16).take(bs / 16).enumerate() {
                    let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
                    println!("{:08x}: {}", i * 16, hex.join(" "));
                }
            }
        }
    }
    Ok(())
}

fn rdma_prtype(p: RdmaProviderType) -> &'static str {
    match p {
        RdmaProviderType::NotSpecified => "not specified",
        RdmaProviderType::InfiniBand => "infiniband",
        RdmaProviderType::RoCe => "roce",
        RdmaProviderType::RoCeV2 => "roce-v2",
        RdmaProviderType::Iwarp => "iwarp",
        RdmaProviderType::Unknown(_) => "reserved",
    }
}

fn rdma_qptype(q: RdmaQpType) -> &'static str {
    match q {
        RdmaQpType::ReliableConnected => "connected",
        RdmaQpType::ReliableDatagram => "datagram",
        RdmaQpType::Unknown(_) => "reserved",
    }
}

fn rdma_cms(c: RdmaCms) -> &'static str {
    match c {
        RdmaCms::RdmaCm => "rdma-cm",
        RdmaCms::Unknown(_) => "reserved",
    }
}
