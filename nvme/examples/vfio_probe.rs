//! Probes a PCIe NVMe controller through VFIO: binds it to vfio-pci (preflight), opens it, maps
//! BAR0 and 4 MiB of hugepage DMA memory, prints the controller registers, then brings up the
//! admin queue pair in that memory and runs Identify Controller, which proves the device's DMA
//! goes through the IOMMU mapping both ways.
//!
//! ```text
//! vfio_probe PCI-ADDRESS [--no-bind] [--release]
//! ```
//! `--no-bind` refuses a device bound to another driver instead of rebinding it; `--release`
//! hands the device back (unbind from vfio-pci, clear driver_override, reprobe) at the end.
//! Output is one `key=value ...` line per step.

use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use nvme::driver::dma::DmaRegion;
use nvme::driver::regs::{aqa, DoorbellLayout, Mmio, ACQ, AQA, ASQ, CAP, CC, CSTS, VS};
use nvme::driver::vfio_setup::{self, hugepages_for, SetupOptions};
use nvme::properties::{Cap, Cc, Csts};
use nvme::sys::vfio::VfioDevice;
use nvme::Sqe;
use zerocopy::IntoBytes;

/// IOVA of the DMA region (above the first 4 GiB, clear of anything the guest maps at 0).
const IOVA: u64 = 0x1_0000_0000;
const DMA_LEN: usize = 4 << 20;
const ASQ_OFF: usize = 0;
const ACQ_OFF: usize = 0x1000;
const IDENTIFY_OFF: usize = 0x2000;
const PATTERN_OFF: usize = DMA_LEN - 0x1000;
const ADMIN_ENTRIES: u32 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(pci) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: vfio_probe PCI-ADDRESS [--no-bind] [--release]");
        return ExitCode::from(2);
    };
    let flag = |f: &str| args.iter().any(|a| a == f);
    match probe(pci, !flag("--no-bind")) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("vfio_probe: {e}");
            return ExitCode::FAILURE;
        }
    }
    if flag("--release") {
        match vfio_setup::release(pci) {
            Ok(d) => println!("released driver={}", d.as_deref().unwrap_or("none")),
            Err(e) => {
                eprintln!("vfio_probe: release: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn probe(pci: &str, bind: bool) -> Result<(), Box<dyn std::error::Error>> {
    let opts = SetupOptions {
        bind,
        hugepages_2m: hugepages_for(DMA_LEN),
    };
    let pf = vfio_setup::prepare(pci, &opts)?;
    let rebound = match &pf.rebound_from {
        None => "no".to_string(),
        Some(prev) => format!("from-{}", prev.as_deref().unwrap_or("none")),
    };
    println!(
        "preflight pci={} group={} rebound={rebound} free_hugepages={}",
        pf.pci, pf.group, pf.free_hugepages
    );

    let dev = VfioDevice::open(&pf.pci)?;
    let bar = dev.bar0()?;
    println!(
        "device bar0_len={:#x} pci_command={:#06x}",
        bar.len(),
        dev.pci_command()?
    );
    let cap = Cap(bar.read64(CAP as usize));
    let vs = bar.read32(VS as usize);
    println!(
        "regs cap={:#018x} mqes={} db_stride={} to_ms={} vs={vs:#010x} cc={:#010x} csts={:#010x}",
        cap.0,
        cap.mqes(),
        cap.doorbell_stride(),
        cap.timeout_ms(),
        bar.read32(CC as usize),
        bar.read32(CSTS as usize)
    );

    let dma = dev.map_dma(DMA_LEN, IOVA)?;
    let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    dma.write_bytes(PATTERN_OFF, &pattern)?;
    let mut back = vec![0u8; pattern.len()];
    dma.read_bytes(PATTERN_OFF, &mut back)?;
    println!(
        "dma iova={:#x} len={} cpu_roundtrip={}",
        dma.iova(),
        dma.len(),
        if back == pattern { "ok" } else { "MISMATCH" }
    );

    identify(&bar, cap, &dma)?;
    Ok(())
}

/// Polls CSTS until RDY equals `rdy` or CAP.TO passes (NVMe Base 2.0 §3.1.4.1, §3.5.1).
fn wait_ready(bar: &impl Mmio, cap: Cap, rdy: bool) -> Result<(), String> {
    let deadline = Instant::now() + cap.timeout().max(Duration::from_millis(500));
    loop {
        let csts = Csts(bar.read32(CSTS as usize));
        if csts.0 == u32::MAX {
            return Err("CSTS reads all ones: the device is gone".into());
        }
        if csts.cfs() {
            return Err(format!("controller fatal status (CSTS {:#x})", csts.0));
        }
        if csts.rdy() == rdy {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("CSTS.RDY did not become {rdy} within CAP.TO"));
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Controller initialisation (NVMe Base 2.0 §3.5.1) with a 2-entry admin queue pair in `dma`,
/// one Identify Controller (CNS 01h, §5.17), then the controller is disabled again.
fn identify(
    bar: &impl Mmio,
    cap: Cap,
    dma: &impl DmaRegion,
) -> Result<(), Box<dyn std::error::Error>> {
    if Cc(bar.read32(CC as usize)).en() {
        bar.write32(CC as usize, Cc(bar.read32(CC as usize)).with_en(false).0);
    }
    wait_ready(bar, cap, false)?;
    dma.write_bytes(ASQ_OFF, &[0u8; 0x3000])?;
    bar.write32(AQA as usize, aqa(ADMIN_ENTRIES, ADMIN_ENTRIES)?);
    bar.write64(ASQ as usize, dma.iova() + ASQ_OFF as u64);
    bar.write64(ACQ as usize, dma.iova() + ACQ_OFF as u64);
    // 4 KiB pages (MPS 0), 64-byte SQEs and 16-byte CQEs (2^6, 2^4), NVM command set.
    let cc = Cc(0)
        .with_css(Cc::CSS_NVM)
        .with_mps(0)
        .with_iosqes(6)
        .with_iocqes(4)
        .with_en(true);
    bar.write32(CC as usize, cc.0);
    wait_ready(bar, cap, true)?;

    let mut sqe = Sqe {
        opcode: 0x06,
        ..Sqe::default()
    };
    sqe.cid.set(0x1234);
    sqe.dptr[..8].copy_from_slice(&(dma.iova() + IDENTIFY_OFF as u64).to_le_bytes());
    sqe.cdw10.set(1);
    dma.write_bytes(ASQ_OFF, sqe.as_bytes())?;
    let db = DoorbellLayout::new(cap, 0x1000 + 2 * cap.doorbell_stride() as usize);
    bar.write32(db.sq_tail(0)?, 1);

    let deadline = Instant::now() + Duration::from_secs(5);
    let dw3 = loop {
        let dw3 = dma.read_u32(ACQ_OFF + 12)?;
        if dw3 & (1 << 16) != 0 {
            break dw3;
        }
        if Instant::now() > deadline {
            return Err("no completion for Identify within 5 s".into());
        }
        thread::sleep(Duration::from_millis(1));
    };
    bar.write32(db.cq_head(0)?, 1);
    let (cid, status) = (dw3 & 0xffff, dw3 >> 17);
    let mut id = [0u8; 72];
    dma.read_bytes(IDENTIFY_OFF, &mut id)?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    println!(
        "identify cid={cid:#x} status={status:#x} vid={:#06x} sn={} mn={} fr={}",
        u16::from_le_bytes([id[0], id[1]]),
        text(&id[4..24]),
        text(&id[24..64]).replace(' ', "_"),
        text(&id[64..72])
    );
    bar.write32(CC as usize, cc.with_en(false).0);
    wait_ready(bar, cap, false)?;
    Ok(())
}
