//! Moving a sandbox's interfaces from one network namespace to another through rtnetlink
//! (netlink-packet-route over netlink-sys): every interface but the loopback, with its
//! addresses and routes, up; the MTU and the MAC go with the device. The loopback of the
//! namespace they reach is brought up too.
//!
//! A device keeps its name when it changes namespace, but loses its addresses and routes
//! and goes down: they are read before the move and written again after it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{RouteAttribute, RouteMessage, RouteProtocol, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::sched::{setns, CloneFlags};

/// The main routing table (RT_TABLE_MAIN).
const MAIN_TABLE: u8 = 254;

/// A step of a move that failed.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {source}")]
pub(crate) struct NetlinkError {
    step: String,
    #[source]
    source: io::Error,
}

fn step(what: impl Into<String>) -> impl FnOnce(io::Error) -> NetlinkError {
    let step = what.into();
    move |source| NetlinkError { step, source }
}

/// A route netlink socket in one network namespace.
struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    /// A socket in the namespace `ns`: a netlink socket belongs to the namespace its
    /// creator was in, so the thread enters `ns` for the `socket()` call and goes back.
    fn open_in(ns: BorrowedFd<'_>) -> io::Result<Netlink> {
        let own = File::open("/proc/thread-self/ns/net")?;
        setns(ns, CloneFlags::CLONE_NEWNET)?;
        let socket = Socket::new(NETLINK_ROUTE);
        setns(own.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
            io::Error::other(format!(
                "cannot return to proxcage's own network namespace: {e}"
            ))
        })?;
        let mut socket = socket?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink { socket, seq: 0 })
    }

    /// Sends `message` and collects the answers: every message of a dump, or none for an
    /// acknowledged change.
    fn call(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq += 1;
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), message.into());
        packet.header.flags = NLM_F_REQUEST | flags;
        packet.header.sequence_number = self.seq;
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        let mut out = Vec::new();
        loop {
            let (bytes, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while offset < bytes.len() {
                let reply: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&bytes[offset..]).map_err(io::Error::other)?;
                if reply.header.length == 0 {
                    break;
                }
                offset += reply.header.length as usize;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(out),
                        Some(_) => return Err(e.to_io()),
                    },
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    _ => {}
                }
            }
        }
    }

    fn links(&mut self) -> io::Result<Vec<LinkMessage>> {
        let got = self.call(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(got
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .collect())
    }

    fn addresses(&mut self) -> io::Result<Vec<AddressMessage>> {
        let got = self.call(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(got
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => Some(a),
                _ => None,
            })
            .collect())
    }

    fn routes(&mut self) -> io::Result<Vec<RouteMessage>> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut query = RouteMessage::default();
            query.header.address_family = family;
            for m in self.call(RouteNetlinkMessage::GetRoute(query), NLM_F_DUMP)? {
                if let RouteNetlinkMessage::NewRoute(r) = m {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// Changes link `index`: its flags under `mask`, and `attributes`.
    fn set_link(
        &mut self,
        index: u32,
        flags: LinkFlags,
        mask: LinkFlags,
        attributes: Vec<LinkAttribute>,
    ) -> io::Result<()> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.header.flags = flags;
        link.header.change_mask = mask;
        link.attributes = attributes;
        self.call(RouteNetlinkMessage::SetLink(link), NLM_F_ACK)
            .map(drop)
    }
}

fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

fn is_loopback(link: &LinkMessage) -> bool {
    link.header.flags.contains(LinkFlags::Loopback)
}

/// What moves with the interfaces: their addresses (not the link-local ones the kernel
/// makes) and their routes of the main table (not the ones the kernel derives from the
/// addresses).
struct Config {
    addresses: Vec<(String, AddressMessage)>,
    routes: Vec<(String, RouteMessage)>,
}

fn read_config(nl: &mut Netlink, names: &BTreeMap<u32, String>) -> io::Result<Config> {
    let addresses = nl
        .addresses()?
        .into_iter()
        .filter(|a| a.header.scope != AddressScope::Link)
        .filter_map(|a| Some((names.get(&a.header.index)?.clone(), a)))
        .collect();
    let routes = nl
        .routes()?
        .into_iter()
        .filter(|r| {
            r.header.table == MAIN_TABLE
                && r.header.protocol != RouteProtocol::Kernel
                && r.header.kind == RouteType::Unicast
        })
        .filter_map(|r| {
            let oif = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(i) => Some(*i),
                _ => None,
            })?;
            Some((names.get(&oif)?.clone(), r))
        })
        .collect();
    Ok(Config { addresses, routes })
}

/// Moves every interface but the loopback from the network namespace `from` to `to`
/// (see the module). Returns the names of the interfaces moved.
pub(crate) fn move_interfaces(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
) -> Result<Vec<String>, NetlinkError> {
    let mut src =
        Netlink::open_in(from).map_err(step("opening netlink in the source namespace"))?;
    let mut dst = Netlink::open_in(to).map_err(step("opening netlink in the target namespace"))?;
    let names: BTreeMap<u32, String> = src
        .links()
        .map_err(step("listing the interfaces"))?
        .iter()
        .filter(|l| !is_loopback(l))
        .filter_map(|l| Some((l.header.index, link_name(l)?.to_string())))
        .collect();
    let config = read_config(&mut src, &names).map_err(step("reading addresses and routes"))?;
    for (index, name) in &names {
        src.set_link(
            *index,
            LinkFlags::empty(),
            LinkFlags::empty(),
            vec![LinkAttribute::NetNsFd(to.as_raw_fd())],
        )
        .map_err(step(format!("moving {name}")))?;
    }
    configure(&mut dst, &names, config)?;
    Ok(names.into_values().collect())
}

/// Brings the loopback and the moved interfaces up in their new namespace and writes
/// their addresses and routes again (routes to a link before routes through a gateway).
fn configure(
    nl: &mut Netlink,
    moved: &BTreeMap<u32, String>,
    config: Config,
) -> Result<(), NetlinkError> {
    let links = nl.links().map_err(step("listing the moved interfaces"))?;
    let mut index = BTreeMap::new();
    for link in &links {
        let name = link_name(link).unwrap_or_default().to_string();
        if is_loopback(link) || moved.values().any(|n| *n == name) {
            nl.set_link(link.header.index, LinkFlags::Up, LinkFlags::Up, Vec::new())
                .map_err(step(format!("bringing {name} up")))?;
            index.insert(name, link.header.index);
        }
    }
    let new_index = |name: &str| {
        index.get(name).copied().ok_or_else(|| NetlinkError {
            step: format!("finding {name} after the move"),
            source: io::Error::from(io::ErrorKind::NotFound),
        })
    };
    for (name, mut address) in config.addresses {
        address.header.index = new_index(&name)?;
        address.attributes.retain(|a| {
            matches!(
                a,
                AddressAttribute::Address(_)
                    | AddressAttribute::Local(_)
                    | AddressAttribute::Broadcast(_)
            )
        });
        nl.call(
            RouteNetlinkMessage::NewAddress(address),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map_err(step(format!("adding an address to {name}")))?;
    }
    let mut routes = config.routes;
    // Link scope (253) sorts before universe (0): a gateway must be reachable first.
    routes.sort_by_key(|(_, r)| std::cmp::Reverse(u8::from(r.header.scope)));
    for (name, mut route) in routes {
        let oif = new_index(&name)?;
        route.attributes.retain(|a| {
            matches!(
                a,
                RouteAttribute::Destination(_)
                    | RouteAttribute::Gateway(_)
                    | RouteAttribute::PrefSource(_)
                    | RouteAttribute::Priority(_)
                    | RouteAttribute::Metrics(_)
                    | RouteAttribute::Table(_)
            )
        });
        route.attributes.push(RouteAttribute::Oif(oif));
        nl.call(
            RouteNetlinkMessage::NewRoute(route),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map_err(step(format!("adding a route through {name}")))?;
    }
    Ok(())
}
