use super::*;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::sync::Arc;

const MIB: u64 = 1 << 20;

/// A scratch directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("ferrofab-nvme-file-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn opts(block_size: u32, size: u64, direct: bool) -> FileOptions {
    FileOptions {
        block_size,
        size: Some(size),
        direct,
        create: true,
    }
}

fn random(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// Read into a deliberately misaligned buffer (offset 1 into a Vec), so the direct path
/// has to bounce.
fn read_unaligned(b: &FileBackend, lba: u64, blocks: u64) -> Vec<u8> {
    let len = (blocks * u64::from(b.block_size)) as usize;
    let mut v = vec![0xeeu8; len + 1];
    assert!(!is_aligned(&v[1..]));
    b.read(lba, &mut v[1..]).unwrap();
    v.remove(0);
    v
}

fn read_aligned(b: &FileBackend, lba: u64, blocks: u64) -> Vec<u8> {
    let mut buf = AlignedBuf::new((blocks * u64::from(b.block_size)) as usize).unwrap();
    buf.as_mut_slice().fill(0xee);
    assert!(is_aligned(buf.as_slice()));
    b.read(lba, buf.as_mut_slice()).unwrap();
    buf.as_slice().to_vec()
}

fn report_path(what: &str, b: &FileBackend) {
    eprintln!(
        "{what}: {} I/O on {}",
        if b.is_direct() {
            "O_DIRECT"
        } else {
            "buffered"
        },
        b.path().display()
    );
}

fn roundtrip(direct: bool) {
    let dir = TempDir::new(if direct { "rt-direct" } else { "rt-buffered" });
    for bs in [512u32, 4096] {
        let size = 4 * MIB;
        let b = FileBackend::open(dir.file(&format!("ns{bs}")), opts(bs, size, direct)).unwrap();
        report_path(&format!("roundtrip bs={bs} direct={direct}"), &b);
        assert_eq!(b.is_direct(), direct, "ext4/xfs temp dirs accept O_DIRECT");
        let bsz = u64::from(bs);
        let cap = b.info().num_blocks;
        assert_eq!(cap, size / bsz);
        let mut rng = StdRng::seed_from_u64(u64::from(bs) + u64::from(direct));
        let mut model = vec![0u8; size as usize];
        // (lba, blocks, unaligned source buffer?): first and last block, a range larger than
        // the bounce buffer, ranges at odd offsets.
        let cases = [
            (0, 1, true),
            (cap - 1, 1, true),
            (3, 5, false),
            (17, (BOUNCE_MAX as u64 + 8192) / bsz, true),
            (cap - 9, 9, false),
        ];
        for (i, &(lba, blocks, unaligned)) in cases.iter().enumerate() {
            let data = random(&mut rng, (blocks * bsz) as usize);
            let fua = i % 2 == 1;
            if unaligned {
                let mut src = vec![0u8; data.len() + 1];
                src[1..].copy_from_slice(&data);
                b.write(lba, &src[1..], fua).unwrap();
            } else {
                let mut src = AlignedBuf::new(data.len()).unwrap();
                src.as_mut_slice().copy_from_slice(&data);
                b.write(lba, src.as_slice(), fua).unwrap();
            }
            let start = (lba * bsz) as usize;
            model[start..start + data.len()].copy_from_slice(&data);
            assert_eq!(read_unaligned(&b, lba, blocks), data);
            assert_eq!(read_aligned(&b, lba, blocks), data);
        }
        b.flush().unwrap();
        assert_eq!(read_unaligned(&b, 0, cap), model);
        assert_eq!(read_aligned(&b, 0, cap), model);
    }
}

#[test]
fn roundtrip_buffered() {
    roundtrip(false);
}

#[test]
fn roundtrip_direct_with_unaligned_buffers() {
    roundtrip(true);
}

#[test]
fn info_and_fresh_file_reads_zero() {
    let dir = TempDir::new("info");
    let b = FileBackend::open(dir.file("ns"), opts(4096, 2 * MIB, false)).unwrap();
    assert_eq!(
        b.info(),
        BackendInfo {
            block_size: 4096,
            num_blocks: 512,
            deallocated_reads_zero: true,
            volatile_write_cache: true,
        }
    );
    assert!(b.may_block());
    assert!(!b.is_block_device());
    assert_eq!(std::fs::metadata(dir.file("ns")).unwrap().len(), 2 * MIB);
    assert_eq!(read_unaligned(&b, 0, 512), vec![0u8; (2 * MIB) as usize]);
}

#[test]
fn survives_reopen() {
    let dir = TempDir::new("reopen");
    let path = dir.file("ns");
    let mut rng = StdRng::seed_from_u64(99);
    let a = random(&mut rng, 8192);
    let c = random(&mut rng, 512);
    {
        let b = FileBackend::open(&path, opts(512, MIB, true)).unwrap();
        report_path("reopen (first open)", &b);
        b.write(100, &a, false).unwrap();
        b.write(2047, &c, true).unwrap();
        b.flush().unwrap();
    }
    // Reopen without size or create: capacity comes from the file.
    let b = FileBackend::open(
        &path,
        FileOptions {
            block_size: 512,
            size: None,
            direct: false,
            create: false,
        },
    )
    .unwrap();
    assert_eq!(b.info().num_blocks, 2048);
    assert_eq!(read_unaligned(&b, 100, 16), a);
    assert_eq!(read_unaligned(&b, 2047, 1), c);
    assert_eq!(read_unaligned(&b, 99, 1), vec![0u8; 512]);
    assert_eq!(read_unaligned(&b, 116, 1), vec![0u8; 512]);
}

#[test]
fn open_validates_geometry_and_kind() {
    let dir = TempDir::new("open");
    let path = dir.file("ns");
    let invalid = |r: Result<FileBackend, BackendError>| matches!(r, Err(BackendError::Io(e)) if e.kind() == io::ErrorKind::InvalidInput);
    // Missing file without create.
    assert!(matches!(
        FileBackend::open(&path, FileOptions { create: false, ..opts(512, MIB, false) }),
        Err(BackendError::Io(e)) if e.kind() == io::ErrorKind::NotFound
    ));
    assert!(invalid(FileBackend::open(&path, opts(1024, MIB, false))));
    assert!(matches!(
        FileBackend::open(&path, opts(4096, MIB + 512, false)),
        Err(BackendError::Misaligned {
            block_size: 4096,
            ..
        })
    ));
    // Creating with no size gives an empty, unusable file.
    assert!(invalid(FileBackend::open(
        &path,
        FileOptions {
            size: None,
            ..opts(512, 0, false)
        }
    )));
    // A file larger than `size` is used only up to `size`; it is not truncated.
    std::fs::write(&path, vec![1u8; 10_000]).unwrap();
    let b = FileBackend::open(&path, opts(512, 4096, false)).unwrap();
    assert_eq!(b.info().num_blocks, 8);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 10_000);
    drop(b);
    // Without a size, a trailing partial block is ignored.
    let b = FileBackend::open(
        &path,
        FileOptions {
            size: None,
            create: false,
            ..opts(4096, 0, false)
        },
    )
    .unwrap();
    assert_eq!(b.info().num_blocks, 2);
    assert_eq!(read_unaligned(&b, 1, 1), vec![1u8; 4096]);
    drop(b);
    // Too small and not allowed to grow.
    assert!(invalid(FileBackend::open(
        &path,
        FileOptions {
            create: false,
            ..opts(512, MIB, false)
        }
    )));
    // A directory is neither a file nor a block device.
    assert!(FileBackend::open(&dir.0, opts(512, MIB, false)).is_err());
}

#[test]
fn direct_open_falls_back_on_einval() {
    let dir = TempDir::new("fallback");
    let path = dir.file("ns");
    std::fs::write(&path, [0u8; 4096]).unwrap();
    // Simulate a filesystem that refuses O_DIRECT.
    let (f, direct) = open_preferring_direct(&path, true, |d| {
        if d {
            Err(io::Error::from_raw_os_error(Errno::EINVAL as i32))
        } else {
            open_fd(&path, false, false, false)
        }
    })
    .unwrap();
    assert!(!direct);
    assert_eq!(f.metadata().unwrap().len(), 4096);
    // Other errors are not mistaken for a refusal.
    let r = open_preferring_direct(&path, true, |_| {
        Err(io::Error::from_raw_os_error(Errno::EACCES as i32))
    });
    assert_eq!(r.unwrap_err().raw_os_error(), Some(Errno::EACCES as i32));
    // Not asked for direct: never tried.
    let (_, direct) = open_preferring_direct(&path, false, |d| {
        assert!(!d);
        open_fd(&path, false, false, false)
    })
    .unwrap();
    assert!(!direct);
    // A real tmpfs, if present, may or may not accept O_DIRECT; either way I/O works.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        let p = shm.join(format!("ferrofab-nvme-file-{}", std::process::id()));
        let b = FileBackend::open(&p, opts(4096, MIB, true));
        let _ = std::fs::remove_file(&p);
        let b = b.unwrap();
        report_path("/dev/shm direct=true", &b);
        let mut src = vec![0u8; 4096 + 1];
        src[1..].fill(0x3c);
        b.write(5, &src[1..], false).unwrap();
        assert_eq!(read_unaligned(&b, 5, 1), vec![0x3c; 4096]);
    }
}

/// Zero several ranges with `zero` and check exactly those bytes changed. Returns the
/// file's allocated 512-byte units before and after zeroing the whole namespace.
fn zeroing_is_exact(tag: &str, direct: bool, zero: impl Fn(&FileBackend, u64, u64)) -> (u64, u64) {
    let dir = TempDir::new(tag);
    let b = FileBackend::open(dir.file("ns"), opts(512, MIB, direct)).unwrap();
    let cap = b.info().num_blocks;
    let mut rng = StdRng::seed_from_u64(5);
    let mut model = random(&mut rng, MIB as usize);
    b.write(0, &model, false).unwrap();
    // Ranges that are not aligned to the filesystem block (4 KiB), plus a single block at
    // each end of the namespace.
    for &(lba, blocks) in &[(3u64, 1u64), (13, 37), (600, 300), (0, 1), (cap - 1, 1)] {
        zero(&b, lba, blocks);
        let start = (lba * 512) as usize;
        model[start..start + (blocks * 512) as usize].fill(0);
        assert_eq!(
            read_unaligned(&b, 0, cap),
            model,
            "after zeroing {lba}+{blocks}"
        );
    }
    b.flush().unwrap();
    let before = std::fs::metadata(dir.file("ns")).unwrap().blocks();
    zero(&b, 0, cap);
    assert_eq!(read_aligned(&b, 0, cap), vec![0u8; MIB as usize]);
    // The file keeps its size.
    let meta = std::fs::metadata(dir.file("ns")).unwrap();
    assert_eq!(meta.len(), MIB);
    eprintln!(
        "{tag}: direct={} zero_range={} punch_hole={}",
        b.is_direct(),
        b.zero_range_ok.load(Ordering::Relaxed),
        b.punch_hole_ok.load(Ordering::Relaxed)
    );
    (before, meta.blocks())
}

#[test]
fn deallocate_zeroes_exactly_the_range() {
    let punched = std::cell::Cell::new(true);
    let (before, after) = zeroing_is_exact("dealloc", false, |b, lba, n| {
        b.deallocate(lba, n).unwrap();
        punched.set(b.punch_hole_ok.load(Ordering::Relaxed));
    });
    if punched.get() {
        // Hole punching really released the space (the earlier partial ranges already
        // freed a few filesystem blocks, so `before` is somewhat under 1 MiB).
        assert!(before >= MIB / 1024, "{before}");
        assert!(after < before / 2, "{after} of {before}");
    }
    zeroing_is_exact("dealloc-direct", true, |b, lba, n| {
        b.deallocate(lba, n).unwrap()
    });
}

#[test]
fn write_zeroes_zeroes_exactly_the_range() {
    zeroing_is_exact("wz", false, |b, lba, n| b.write_zeroes(lba, n).unwrap());
    zeroing_is_exact("wz-direct", true, |b, lba, n| {
        b.write_zeroes(lba, n).unwrap()
    });
}

#[test]
fn zeroing_by_writes_when_fallocate_is_unavailable() {
    for direct in [false, true] {
        let tag = if direct {
            "nofalloc-direct"
        } else {
            "nofalloc"
        };
        zeroing_is_exact(tag, direct, |b, lba, n| {
            b.zero_range_ok.store(false, Ordering::Relaxed);
            b.punch_hole_ok.store(false, Ordering::Relaxed);
            if n % 2 == 0 {
                b.write_zeroes(lba, n).unwrap()
            } else {
                b.deallocate(lba, n).unwrap()
            }
        });
    }
}

#[test]
fn unsupported_fallocate_is_classified() {
    assert!(fallocate_unsupported(Errno::EOPNOTSUPP));
    assert!(fallocate_unsupported(Errno::ENOSYS));
    assert!(!fallocate_unsupported(Errno::EIO));
    assert!(!fallocate_unsupported(Errno::ENOSPC));
}

#[test]
fn errors_map_to_backend_errors() {
    assert!(matches!(
        map_io(io::Error::from_raw_os_error(Errno::ENOSPC as i32)),
        BackendError::NoSpace
    ));
    assert!(matches!(
        map_io(io::Error::from_raw_os_error(Errno::EDQUOT as i32)),
        BackendError::NoSpace
    ));
    assert!(matches!(
        map_io(io::Error::from_raw_os_error(Errno::EIO as i32)),
        BackendError::Io(e) if e.raw_os_error() == Some(Errno::EIO as i32)
    ));

    let dir = TempDir::new("errors");
    let b = FileBackend::open(dir.file("ns"), opts(4096, MIB, true)).unwrap();
    let cap = b.info().num_blocks;
    let mut buf = vec![0u8; 8192];
    assert!(matches!(
        b.read(cap - 1, &mut buf),
        Err(BackendError::OutOfRange { lba, blocks: 2, capacity }) if lba == cap - 1 && capacity == cap
    ));
    assert!(matches!(
        b.write(u64::MAX, &buf, true),
        Err(BackendError::OutOfRange { .. })
    ));
    assert!(matches!(
        b.write(0, &buf[..1000], false),
        Err(BackendError::Misaligned {
            len: 1000,
            block_size: 4096
        })
    ));
    assert!(matches!(
        b.read(0, &mut buf[..4097]),
        Err(BackendError::Misaligned { len: 4097, .. })
    ));
    assert!(matches!(
        b.write_zeroes(cap, 1),
        Err(BackendError::OutOfRange { .. })
    ));
    assert!(matches!(
        b.deallocate(1, u64::MAX),
        Err(BackendError::OutOfRange { .. })
    ));
    // Nothing grew the file.
    assert_eq!(std::fs::metadata(dir.file("ns")).unwrap().len(), MIB);
    b.read(cap, &mut []).unwrap();
}

#[test]
fn concurrent_writers_on_one_file() {
    const THREADS: u64 = 4;
    let dir = TempDir::new("concurrent");
    let b = Arc::new(FileBackend::open(dir.file("ns"), opts(512, 2 * MIB, true)).unwrap());
    report_path("concurrent", &b);
    let cap = b.info().num_blocks;
    let pattern = |lba: u64| random(&mut StdRng::seed_from_u64(lba), 1024);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let b = Arc::clone(&b);
            std::thread::spawn(move || {
                let mut lba = t * 2;
                while lba + 2 <= cap {
                    b.write(lba, &pattern(lba), lba % 3 == 0).unwrap();
                    lba += THREADS * 2;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    b.flush().unwrap();
    let all = read_unaligned(&b, 0, cap);
    for lba in (0..cap).step_by(2) {
        let off = (lba * 512) as usize;
        assert_eq!(all[off..off + 1024], pattern(lba)[..], "lba {lba}");
    }
}
