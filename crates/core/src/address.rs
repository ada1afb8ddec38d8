//! Which network addresses are internal: loopback, private, link-local and the like.
//!
//! A server may be told to refuse sending to these (webhooks), since a URL written by whoever holds an API
//! token would otherwise make Sluice reach services that only its own network can: a cloud metadata
//! endpoint at 169.254.169.254, an admin port on localhost. The decision is by address, after the name
//! is resolved; the caller then connects to the address it checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why `ip` is internal (`"loopback"`, `"private"`, `"link-local"`, …), or `None` for a public address.
pub fn internal_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(match () {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_private() => "private",
        _ if ip.is_link_local() => "link-local",
        _ if a == 0 => "unspecified",
        // Carrier-grade NAT, shared address space (RFC 6598).
        _ if a == 100 && (64..128).contains(&b) => "private",
        // Benchmarking networks (RFC 2544), often routed inside data centres.
        _ if a == 198 && (b == 18 || b == 19) => "private",
        _ if ip.is_multicast() => "multicast",
        _ if a >= 240 => "reserved",
        _ => return None,
    })
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_kind(v4);
    }
    // NAT64 (64:ff9b::/96) reaches the IPv4 address it embeds.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        let [a, b] = seg[6].to_be_bytes();
        let [c, d] = seg[7].to_be_bytes();
        return v4_kind(Ipv4Addr::new(a, b, c, d));
    }
    Some(match () {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_unspecified() => "unspecified",
        _ if seg[0] & 0xfe00 == 0xfc00 => "private",
        _ if seg[0] & 0xffc0 == 0xfe80 => "link-local",
        // Site-local, deprecated but still routed in some networks.
        _ if seg[0] & 0xffc0 == 0xfec0 => "private",
        _ if ip.is_multicast() => "multicast",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<&'static str> {
        internal_kind(s.parse().unwrap())
    }

    #[test]
    fn internal_addresses_are_named() {
        for (ip, k) in [
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "private"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "private"),
            ("fe80::1", "link-local"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::a00:1", "private"),
        ] {
            assert_eq!(kind(ip), Some(k), "{ip}");
        }
    }

    #[test]
    fn public_addresses_are_not() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }
}
