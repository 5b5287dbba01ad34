use super::*;

#[test]
fn start_identifies_the_default_controller() {
    let r = rig(ModelConfig::default());
    let info = r.driver.info();
    assert_eq!(info.mdts_bytes, Some(128 * 1024));
    assert_eq!(info.max_transfer, 128 * 1024);
    assert_eq!(info.io_queues, 2);
    assert_eq!(info.queue_entries, 64);
    assert!(!info.sgl);
    assert_eq!(info.namespaces.len(), 1);
    let ns = &info.namespaces[0];
    assert_eq!(
        (ns.nsid, ns.block_size, ns.blocks, ns.zoned.clone()),
        (1, 4096, 1024, None)
    );
    assert_eq!(r.ctrl.resets(), 0);
    let _ = &r.clock;
}
