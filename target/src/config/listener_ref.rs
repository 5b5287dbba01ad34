//! How a subsystem names the listeners it is reachable on (`listeners = [...]`).
//!
//! `"IP:port"` names every `[[listener]]` configured on that address, whatever its transport:
//! what it always meant (TCP was the only transport), and what an operator who serves one
//! address over TCP and RDMA usually wants. `"tcp://IP:port"` and `"rdma://IP:port"` name the
//! one listener of that transport on the address.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ListenerConfig, TransportKind};

/// A subsystem's reference to configured listeners (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerRef {
    /// `None`: every listener on `address`.
    pub transport: Option<TransportKind>,
    /// The configured address (port 0 stays 0).
    pub address: SocketAddr,
}

impl ListenerRef {
    /// Every listener configured on `address`.
    pub fn any(address: SocketAddr) -> ListenerRef {
        ListenerRef {
            transport: None,
            address,
        }
    }

    /// The `transport` listener configured on `address`.
    pub fn of(transport: TransportKind, address: SocketAddr) -> ListenerRef {
        ListenerRef {
            transport: Some(transport),
            address,
        }
    }

    /// Whether this reference names the configured listener `l`.
    pub fn matches(&self, l: &ListenerConfig) -> bool {
        self.address == l.address && self.transport.is_none_or(|t| t == l.transport)
    }
}

impl From<SocketAddr> for ListenerRef {
    fn from(address: SocketAddr) -> ListenerRef {
        ListenerRef::any(address)
    }
}

impl fmt::Display for ListenerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.transport {
            None => write!(f, "{}", self.address),
            Some(t) => write!(f, "{t}://{}", self.address),
        }
    }
}

impl FromStr for ListenerRef {
    type Err = String;

    fn from_str(text: &str) -> Result<ListenerRef, String> {
        const FORMS: &str = "IP:port, tcp://IP:port or rdma://IP:port";
        let (transport, address) = match text.split_once("://") {
            None => (None, text),
            Some((scheme, rest)) => {
                let t = scheme.parse::<TransportKind>().map_err(|_| {
                    format!("listener {text:?}: unknown transport {scheme:?} (want {FORMS})")
                })?;
                (Some(t), rest)
            }
        };
        let address = address
            .parse()
            .map_err(|e| format!("listener {text:?}: {e} (want {FORMS})"))?;
        Ok(ListenerRef { transport, address })
    }
}

impl Serialize for ListenerRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ListenerRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(transport: TransportKind, address: &str) -> ListenerConfig {
        ListenerConfig {
            transport,
            address: address.parse().unwrap(),
            tls: Default::default(),
        }
    }

    #[test]
    fn plain_addresses_name_every_transport_and_schemes_name_one() {
        let plain: ListenerRef = "192.0.2.10:4420".parse().unwrap();
        let rdma: ListenerRef = "rdma://192.0.2.10:4420".parse().unwrap();
        let tcp6: ListenerRef = "tcp://[::1]:4420".parse().unwrap();
        let (t, r) = (
            l(TransportKind::Tcp, "192.0.2.10:4420"),
            l(TransportKind::Rdma, "192.0.2.10:4420"),
        );
        assert!(plain.matches(&t) && plain.matches(&r));
        assert!(!rdma.matches(&t) && rdma.matches(&r));
        assert!(!plain.matches(&l(TransportKind::Tcp, "192.0.2.10:4421")));
        assert_eq!(
            tcp6,
            ListenerRef::of(TransportKind::Tcp, "[::1]:4420".parse().unwrap())
        );
        // Written back as read.
        for text in [
            "192.0.2.10:4420",
            "rdma://192.0.2.10:4420",
            "tcp://[::1]:4420",
        ] {
            assert_eq!(text.parse::<ListenerRef>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn bad_references_say_which_forms_are_accepted() {
        for (text, want) in [
            ("udp://1.2.3.4:1", "unknown transport \"udp\""),
            (
                "rdma://1.2.3.4",
                "want IP:port, tcp://IP:port or rdma://IP:port",
            ),
            ("localhost:4420", "want IP:port"),
            ("", "want IP:port"),
        ] {
            let e = text.parse::<ListenerRef>().unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    const TCP_AND_RDMA: &str = "[[listener]]\ntransport = \"tcp\"\naddress = \"192.0.2.10:4420\"\n\
         [[listener]]\ntransport = \"rdma\"\naddress = \"192.0.2.10:4420\"\n";

    fn parse(text: &str) -> Result<super::super::Config, String> {
        super::super::Config::parse(text, "t.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn one_address_may_have_a_tcp_and_an_rdma_listener_but_not_two_of_one() {
        let c = parse(&format!(
            "{TCP_AND_RDMA}[[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:a\"\n\
             listeners = [\"rdma://192.0.2.10:4420\", \"192.0.2.10:4420\"]\n"
        ))
        .unwrap();
        let kinds: Vec<_> = c.listener.iter().map(|l| l.transport).collect();
        assert_eq!(kinds, vec![TransportKind::Tcp, TransportKind::Rdma]);
        let refs = c.subsystem[0].listeners.clone().unwrap();
        assert_eq!(refs[0].transport, Some(TransportKind::Rdma));
        assert_eq!(refs[1].transport, None);
        // What is persisted reads back as the same configuration.
        assert_eq!(parse(&c.to_toml().unwrap()).unwrap(), c);

        let twice = "[[listener]]\ntransport = \"rdma\"\naddress = \"192.0.2.10:4420\"\n";
        let e = parse(&format!("{TCP_AND_RDMA}{twice}")).unwrap_err();
        assert!(
            e.contains("listener rdma 192.0.2.10:4420 is configured twice"),
            "{e}"
        );
        let mut raw: super::super::Config =
            toml::from_str(&format!("{TCP_AND_RDMA}{twice}")).unwrap();
        let rule = raw.validate().unwrap_err();
        assert_eq!(rule.field.unwrap().to_string(), "listener[2].address");
    }

    #[test]
    fn a_transport_reference_needs_a_listener_of_that_transport() {
        let tcp_only = "[[listener]]\ntransport = \"tcp\"\naddress = \"192.0.2.10:4420\"\n";
        let sub = |refs: &str| {
            format!("{tcp_only}[[subsystem]]\nnqn = \"nqn.2026-01.io.ferrofab:a\"\nlisteners = [{refs}]\n")
        };
        parse(&sub("\"192.0.2.10:4420\", \"tcp://192.0.2.10:4420\"")).unwrap();
        let e = parse(&sub("\"rdma://192.0.2.10:4420\"")).unwrap_err();
        assert!(
            e.contains("listener rdma://192.0.2.10:4420 is not a configured [[listener]]"),
            "{e}"
        );
        let e = parse(&sub("\"ib://192.0.2.10:4420\"")).unwrap_err();
        assert!(e.contains("unknown transport \"ib\""), "{e}");
        let e =
            parse("[[listener]]\ntransport = \"fc\"\naddress = \"192.0.2.10:4420\"\n").unwrap_err();
        assert!(e.contains("tcp") && e.contains("rdma"), "{e}");
    }
}
