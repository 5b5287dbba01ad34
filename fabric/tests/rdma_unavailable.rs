//! NVMe/RDMA on a machine without RDMA: the transport starts (its reactors do not touch
//! rdma-core), and binding a listener fails with an error that says what is missing,
//! instead of a crash at load time (rdma-core is loaded at run time).

use std::net::SocketAddr;

use fabric::rdma::server::RdmaTransport;
use fabric::tcp::reactor::{PollMode, ReactorConfig};

#[test]
fn binding_without_rdma_fails_with_a_clear_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let transport = RdmaTransport::start(
        ReactorConfig {
            count: 1,
            poll: PollMode::Adaptive,
            ..ReactorConfig::default()
        },
        rt.handle().clone(),
    )
    .expect("the reactors start without rdma-core");
    assert_eq!(transport.loads(), vec![0]);
    let have_rdma = std::path::Path::new("/dev/infiniband/rdma_cm").exists();
    let address: SocketAddr = "127.0.0.1:0".parse().expect("address");
    match transport.bind(address) {
        Ok(bound) => assert!(have_rdma, "bound {} without an RDMA device", bound.address),
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.contains("rdma-core") || text.contains("127.0.0.1") || text.contains("RDMA"),
                "the error says what failed: {text}"
            );
            if !have_rdma {
                // Without the kernel's RDMA CM or the libraries, the message names rdma-core.
                assert!(text.contains("rdma"), "{text}");
            }
        }
    }
    transport.stop_and_join();
}
