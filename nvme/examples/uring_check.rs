//! Exercise [`UringBackend`] against a real NVMe namespace (run as root in a test guest; it
//! overwrites data on the namespace):
//!
//! ```text
//! uring_check [DEVICE (default /dev/ng0n1)] [--iopoll] [--ios N]
//! ```
//!
//! Writes a pattern at several LBAs and sizes (4 KiB, 128 KiB, 1 MiB, larger than one
//! command, so split), reads it back and compares; flushes; checks that Write Zeroes reads
//! back zeroes and that Deallocate succeeds (it is advisory: the range reads zeroes or its old
//! data); then runs N 4 KiB writes and reads as [`QueuedBackend`] futures at queue depth 32,
//! polled with a no-op waker, checks the data and prints IOPS. Prints `uring_check: OK` and exits 0 when every check passed.

use std::process::ExitCode;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use nvme::backend::{Backend, BackendError, IoFuture, QueuedBackend, UringBackend, UringOptions};

const QD: usize = 32;

/// Block-stamped data: every byte depends on the LBA, the offset and `seed`.
fn pattern(lba: u64, len: usize, bs: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let block = lba + (i / bs) as u64;
            (block as u8) ^ ((block >> 8) as u8) ^ (i as u8).wrapping_mul(31) ^ seed
        })
        .collect()
}

fn check(what: &str, ok: bool) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("FAIL {what}"))
    }
}

fn err(what: &str) -> impl Fn(BackendError) -> String + '_ {
    move |e| format!("FAIL {what}: {e}")
}

/// Poll `futs` with a no-op waker until all are ready, in order of completion.
fn drive<T>(futs: &mut Vec<(usize, IoFuture<T>)>, out: &mut Vec<(usize, Result<T, BackendError>)>) {
    let mut cx = Context::from_waker(Waker::noop());
    futs.retain_mut(|(i, f)| match f.as_mut().poll(&mut cx) {
        Poll::Ready(r) => {
            out.push((*i, r));
            false
        }
        Poll::Pending => true,
    });
}

/// Run `n` operations made by `make` with at most `QD` in flight; returns the results.
fn run_queued<T>(
    n: usize,
    mut make: impl FnMut(usize) -> IoFuture<T>,
) -> Vec<(usize, Result<T, BackendError>)> {
    let mut futs = Vec::with_capacity(QD);
    let mut out = Vec::with_capacity(n);
    let mut next = 0;
    while out.len() < n {
        while futs.len() < QD && next < n {
            futs.push((next, make(next)));
            next += 1;
        }
        drive(&mut futs, &mut out);
    }
    out
}

fn blocking(b: &dyn Backend, max_transfer: usize) -> Result<(), String> {
    let info = b.info();
    let bs = info.block_size as usize;
    let sizes = [4096usize, 128 << 10, 1 << 20];
    let lbas = [0u64, 777 * 8, info.num_blocks - ((1 << 20) / bs as u64)];
    for (seed, &size) in sizes.iter().enumerate() {
        for &lba in &lbas {
            let data = pattern(lba, size, bs, seed as u8);
            b.write(lba, &data, seed == 1).map_err(err("write"))?;
            let mut back = vec![0u8; size];
            b.read(lba, &mut back).map_err(err("read"))?;
            check(
                &format!("read back {size} bytes at LBA {lba}"),
                back == data,
            )?;
        }
    }
    println!(
        "blocking write/read/compare: sizes {sizes:?} at LBAs {lbas:?}, split above {} bytes",
        max_transfer
    );
    b.flush().map_err(err("flush"))?;

    let zero_lba = 64;
    let blocks = (256 << 10) / bs as u64;
    b.write(
        zero_lba,
        &pattern(zero_lba, (256 << 10) as usize, bs, 9),
        false,
    )
    .map_err(err("write before zeroes"))?;
    b.write_zeroes(zero_lba, blocks)
        .map_err(err("write zeroes"))?;
    let mut back = vec![0xffu8; 256 << 10];
    b.read(zero_lba, &mut back).map_err(err("read zeroes"))?;
    check(
        "write zeroes reads back zeroes",
        back.iter().all(|&x| x == 0),
    )?;

    b.write(zero_lba, &pattern(zero_lba, 256 << 10, bs, 7), false)
        .map_err(err("write before deallocate"))?;
    b.deallocate(zero_lba, blocks).map_err(err("deallocate"))?;
    // Deallocation is advisory (NVM Command Set 1.0 §3.2.3.2.1): the drive may keep the data.
    b.read(zero_lba, &mut back)
        .map_err(err("read deallocated"))?;
    let dealloc_zero = back.iter().all(|&x| x == 0);
    check(
        "deallocated range reads old data or zeroes",
        dealloc_zero || back == pattern(zero_lba, 256 << 10, bs, 7),
    )?;
    match b.read(info.num_blocks, &mut vec![0u8; bs]) {
        Err(BackendError::OutOfRange { .. }) => {}
        other => return Err(format!("FAIL read past the end: {other:?}")),
    }
    println!(
        "flush, write zeroes, deallocate ok (DLFEAT reads zero: {}, range now zero: {dealloc_zero})",
        info.deallocated_reads_zero
    );
    Ok(())
}

fn queued(b: &dyn Backend, ios: usize) -> Result<(), String> {
    let q: &dyn QueuedBackend = b.queued().ok_or("FAIL no queued interface")?;
    let bs = b.info().block_size as usize;
    let span = (b.info().num_blocks / 8).max(1);
    let lba_of = |i: usize| ((i as u64).wrapping_mul(2_654_435_761) % span) / 8 * 8 + 4096;
    // Distinct LBAs so that every read has exactly one expected content.
    let mut lbas: Vec<u64> = (0..ios).map(lba_of).collect();
    lbas.sort_unstable();
    lbas.dedup();
    let n = lbas.len();

    let t = Instant::now();
    for (i, r) in run_queued(n, |i| {
        q.write(lbas[i], Bytes::from(pattern(lbas[i], 4096, bs, 3)), false)
    }) {
        r.map_err(|e| format!("FAIL queued write {i}: {e}"))?;
    }
    let w_iops = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for (i, r) in run_queued(n, |i| q.read(lbas[i], vec![0u8; 4096])) {
        let back = r.map_err(|e| format!("FAIL queued read {i}: {e}"))?;
        check(
            &format!("queued read {i} at LBA {}", lbas[i]),
            back == pattern(lbas[i], 4096, bs, 3),
        )?;
    }
    let r_iops = n as f64 / t.elapsed().as_secs_f64();

    let big = pattern(8, 3 << 20, bs, 5);
    for (_, r) in run_queued(1, |_| q.write(8, Bytes::from(big.clone()), true)) {
        r.map_err(err("queued 3 MiB write"))?;
    }
    for (_, r) in run_queued(1, |_| q.read(8, vec![0u8; 3 << 20])) {
        check(
            "queued 3 MiB split read",
            r.map_err(err("queued 3 MiB read"))? == big,
        )?;
    }
    for (_, r) in run_queued(3, |i| match i {
        0 => q.flush(),
        1 => q.write_zeroes(8, 8),
        _ => q.deallocate(16, 8),
    }) {
        r.map_err(err("queued flush/write zeroes/deallocate"))?;
    }
    for (_, r) in run_queued(1, |_| q.read(8, vec![1u8; 4096])) {
        check(
            "queued write zeroes",
            r.map_err(err("read"))?.iter().all(|&x| x == 0),
        )?;
    }
    println!("queued QD{QD}: {n} x 4 KiB writes {w_iops:.0} IOPS, reads {r_iops:.0} IOPS, data ok; 3 MiB split ok");
    Ok(())
}

fn main() -> ExitCode {
    let mut dev = "/dev/ng0n1".to_string();
    let mut iopoll = false;
    let mut ios = 4096usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--iopoll" => iopoll = true,
            "--ios" => ios = args.next().and_then(|v| v.parse().ok()).unwrap_or(ios),
            _ => dev = a,
        }
    }
    let b = match UringBackend::open(
        &dev,
        UringOptions {
            queue_depth: 64,
            iopoll,
        },
    ) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("FAIL open {dev}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let info = b.info();
    println!(
        "{dev}: nsid {} block size {} blocks {} vwc {} iopoll {} max transfer {}",
        b.nsid(),
        info.block_size,
        info.num_blocks,
        info.volatile_write_cache,
        b.iopoll(),
        b.max_transfer()
    );
    match blocking(&*b, b.max_transfer()).and_then(|()| queued(&*b, ios)) {
        Ok(()) => {
            println!("uring_check: OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
