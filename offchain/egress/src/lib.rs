//! Outbound HTTP to user-supplied URLs that cannot be turned inward (SSRF).
//!
//! A URL is checked twice: when it is registered ([`EgressPolicy::check_url`]: scheme,
//! host, and every address the host resolves to now), and on every connection made for it
//! ([`EgressPolicy::client`]: a resolver that refuses internal answers, so a name that
//! resolves elsewhere later — DNS rebinding — still cannot reach us; IP-literal hosts,
//! which no resolver sees, are checked per request by [`EgressPolicy::check_request`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use reqwest::Url;

/// How long registration waits for DNS before accepting a host it could not resolve
/// (connections are checked again anyway).
const REGISTRATION_DNS_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("not an absolute URL")]
    NotAUrl,
    #[error("only https URLs are accepted")]
    SchemeNotAllowed,
    #[error("the URL has no host")]
    NoHost,
    #[error("URLs with user names or passwords are not accepted")]
    Credentials,
    /// The host is, or resolves to, an address inside a network we must not reach.
    #[error("{host} is {addr}, a {range} address")]
    Internal {
        host: String,
        addr: IpAddr,
        range: &'static str,
    },
    #[error("{0} does not resolve")]
    Unresolvable(String),
}

impl EgressError {
    /// The URL's form is wrong (as opposed to where it points).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            EgressError::NotAUrl
                | EgressError::SchemeNotAllowed
                | EgressError::NoHost
                | EgressError::Credentials
        )
    }
}

/// One entry of the operator's allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allow {
    /// A host name (lower case); every address it resolves to is admitted.
    Host(String),
    /// An address range.
    Net(IpAddr, u8),
}

/// Where outbound requests to user-supplied URLs may go.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allow_http: bool,
    allow: Vec<Allow>,
}

impl EgressPolicy {
    /// https only, public addresses only.
    pub fn production() -> Self {
        EgressPolicy::default()
    }

    /// Also plain http (development; never the internal ranges).
    pub fn allowing_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Adds allow-list entries: `host`, `ip` or `ip/prefix`, comma-separated.
    pub fn allowing(mut self, list: &str) -> Result<Self, String> {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            self.allow.push(parse_allow(item)?);
        }
        Ok(self)
    }

    /// `ADVANCIA_EGRESS_ALLOW` (allow-list) over a production policy, plain http too when
    /// `dev`.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>, dev: bool) -> Result<Self, String> {
        let mut p = EgressPolicy::production();
        if dev {
            p = p.allowing_http();
        }
        match get("ADVANCIA_EGRESS_ALLOW") {
            Some(v) => p
                .allowing(&v)
                .map_err(|e| format!("ADVANCIA_EGRESS_ALLOW: {e}")),
            None => Ok(p),
        }
    }

    pub fn allows_http(&self) -> bool {
        self.allow_http
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.allow
            .iter()
            .any(|a| matches!(a, Allow::Host(h) if h.eq_ignore_ascii_case(host)))
    }

    fn ip_allowed(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow
            .iter()
            .any(|a| matches!(a, Allow::Net(net, prefix) if in_net(ip, *net, *prefix)))
    }

    /// Whether a connection to `ip`, reached through `host`, is permitted.
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), EgressError> {
        match internal_range(ip) {
            Some(range) if !self.host_allowed(host) && !self.ip_allowed(ip) => {
                Err(EgressError::Internal {
                    host: host.to_owned(),
                    addr: ip,
                    range,
                })
            }
            _ => Ok(()),
        }
    }

    /// The URL's form (scheme, host, no credentials) and, for an IP-literal host, its
    /// address. Runs before every request: no resolver sees literal addresses.
    pub fn check_request(&self, url: &str) -> Result<Url, EgressError> {
        let url = Url::parse(url).map_err(|_| EgressError::NotAUrl)?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            _ => return Err(EgressError::SchemeNotAllowed),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EgressError::Credentials);
        }
        match url.host() {
            None => return Err(EgressError::NoHost),
            Some(url::Host::Ipv4(ip)) => self.check_ip(&ip.to_string(), IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_ip(&ip.to_string(), IpAddr::V6(ip))?,
            Some(url::Host::Domain("")) => return Err(EgressError::NoHost),
            Some(url::Host::Domain(_)) => {}
        }
        Ok(url)
    }

    /// Registration: [`Self::check_request`], then every address the host resolves to
    /// now must be permitted. A host that does not resolve (yet) is accepted: each
    /// connection is checked again.
    pub async fn check_url(&self, url: &str) -> Result<Url, EgressError> {
        let parsed = self.check_request(url)?;
        if let Some(url::Host::Domain(host)) = parsed.host() {
            let host = host.to_owned();
            if let Ok(Err(e @ EgressError::Internal { .. })) =
                tokio::time::timeout(REGISTRATION_DNS_TIMEOUT, self.resolve(&host)).await
            {
                return Err(e);
            }
        }
        Ok(parsed)
    }

    /// The host's addresses, all of them permitted (one internal address refuses the
    /// name: an attacker controls which one a client picks).
    pub async fn resolve(&self, host: &str) -> Result<Vec<SocketAddr>, EgressError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|_| EgressError::Unresolvable(host.to_owned()))?
            .collect();
        if addrs.is_empty() {
            return Err(EgressError::Unresolvable(host.to_owned()));
        }
        for a in &addrs {
            self.check_ip(host, a.ip())?;
        }
        Ok(addrs)
    }

    /// `builder` with this policy's resolver, no redirects and no proxies (a proxy would
    /// resolve the name itself, out of our sight).
    pub fn client(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder
            .dns_resolver(Arc::new(GuardedResolver {
                policy: Arc::new(self.clone()),
            }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
    }
}

struct GuardedResolver {
    policy: Arc<EgressPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            match policy.resolve(name.as_str()).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Err(e) => {
                    tracing::warn!(error = %e, "outbound connection refused");
                    Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                }
            }
        })
    }
}

fn parse_allow(item: &str) -> Result<Allow, String> {
    if let Some((net, prefix)) = item.split_once('/') {
        let ip: IpAddr = net
            .parse()
            .map_err(|_| format!("`{item}` is not an address range (e.g. 10.1.0.0/16)"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("`{item}`: prefix length must be 0 to {max}"))?;
        return Ok(Allow::Net(canonical(ip), prefix));
    }
    if let Ok(ip) = item.trim_matches(['[', ']']).parse::<IpAddr>() {
        let ip = canonical(ip);
        return Ok(Allow::Net(ip, if ip.is_ipv4() { 32 } else { 128 }));
    }
    let valid = !item.is_empty()
        && item.len() <= 253
        && item
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if valid {
        Ok(Allow::Host(item.to_ascii_lowercase()))
    } else {
        Err(format!(
            "`{item}` is neither a host name, an address nor a range"
        ))
    }
}

/// IPv4 carried inside IPv6 (mapped, compatible) is judged as that IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

const V4_RANGES: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "unspecified"),
    ([10, 0, 0, 0], 8, "private"),
    ([100, 64, 0, 0], 10, "carrier-grade NAT"),
    ([127, 0, 0, 0], 8, "loopback"),
    ([169, 254, 169, 254], 32, "cloud metadata"),
    ([169, 254, 0, 0], 16, "link-local"),
    ([172, 16, 0, 0], 12, "private"),
    ([192, 0, 0, 0], 24, "IETF protocol assignment"),
    ([192, 0, 2, 0], 24, "documentation"),
    ([192, 88, 99, 0], 24, "6to4 relay"),
    ([192, 168, 0, 0], 16, "private"),
    ([198, 18, 0, 0], 15, "benchmarking"),
    ([198, 51, 100, 0], 24, "documentation"),
    ([203, 0, 113, 0], 24, "documentation"),
    ([224, 0, 0, 0], 4, "multicast"),
    ([240, 0, 0, 0], 4, "reserved"),
];

/// The name of the internal range `ip` falls in, if any.
pub fn internal_range(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => v4_range(v4),
        IpAddr::V6(v6) => v6_range(v6),
    }
}

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    V4_RANGES
        .iter()
        .find(|(net, prefix, _)| in_net(IpAddr::V4(ip), IpAddr::V4(Ipv4Addr::from(*net)), *prefix))
        .map(|(_, _, name)| *name)
}

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // IPv4-compatible (::a.b.c.d, deprecated): the IPv4 decides.
    if seg[..6] == [0; 6] {
        return v4_range(embedded_v4(seg[6], seg[7])).or(Some("reserved"));
    }
    // NAT64 (64:ff9b::/96): the IPv4 it translates to decides.
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4_range(embedded_v4(seg[6], seg[7]));
    }
    // 6to4 (2002::/16) carries an IPv4 in bits 16..48.
    if seg[0] == 0x2002 {
        return v4_range(embedded_v4(seg[1], seg[2]));
    }
    match seg[0] {
        s if s & 0xfe00 == 0xfc00 => Some("private"), // fc00::/7 unique local
        s if s & 0xffc0 == 0xfe80 => Some("link-local"), // fe80::/10
        s if s & 0xffc0 == 0xfec0 => Some("site-local"), // fec0::/10, deprecated
        s if s & 0xff00 == 0xff00 => Some("multicast"), // ff00::/8
        0x2001 if seg[1] == 0x0db8 => Some("documentation"),
        0x0100 if seg[1..4] == [0, 0, 0] => Some("discard-only"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> Option<&'static str> {
        internal_range(s.parse().expect("address"))
    }

    #[test]
    fn internal_ranges_are_named() {
        for (ip, name) in [
            ("127.0.0.1", "loopback"),
            ("127.255.1.2", "loopback"),
            ("10.1.2.3", "private"),
            ("172.31.255.255", "private"),
            ("192.168.0.1", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.100.100.200", "carrier-grade NAT"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("0.0.0.0", "unspecified"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00:ec2::254", "private"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "cloud metadata"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::a00:1", "private"),
            ("2002:c0a8:0101::1", "private"),
        ] {
            assert_eq!(range(ip), Some(name), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(range(ip), None, "{ip}");
        }
    }

    #[test]
    fn request_urls_are_checked_for_form_and_literal_addresses() {
        let p = EgressPolicy::production();
        assert!(p.check_request("https://hooks.example.com/x").is_ok());
        assert_eq!(
            p.check_request("http://hooks.example.com/x"),
            Err(EgressError::SchemeNotAllowed)
        );
        assert_eq!(
            p.check_request("ftp://hooks.example.com/x"),
            Err(EgressError::SchemeNotAllowed)
        );
        assert_eq!(
            p.check_request("https://u:p@hooks.example.com/"),
            Err(EgressError::Credentials)
        );
        assert_eq!(p.check_request("not a url"), Err(EgressError::NotAUrl));
        // Every spelling of loopback the URL parser accepts becomes the same address.
        for url in [
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://[::1]/",
            "https://[::ffff:7f00:1]/",
            "https://0/",
        ] {
            assert!(
                matches!(p.check_request(url), Err(EgressError::Internal { .. })),
                "{url}"
            );
        }
        let dev = EgressPolicy::production().allowing_http();
        assert!(dev.check_request("http://hooks.example.com/").is_ok());
        assert!(dev.check_request("http://127.0.0.1:8080/").is_err());
    }

    #[test]
    fn the_allow_list_admits_hosts_addresses_and_ranges() {
        let p = EgressPolicy::production()
            .allowing("127.0.0.1, hooks.internal, 10.8.0.0/16, ::1")
            .expect("list");
        assert!(p.check_ip("x", "127.0.0.1".parse().expect("ip")).is_ok());
        assert!(p.check_ip("x", "127.0.0.2".parse().expect("ip")).is_err());
        assert!(p.check_ip("x", "10.8.3.4".parse().expect("ip")).is_ok());
        assert!(p.check_ip("x", "10.9.3.4".parse().expect("ip")).is_err());
        assert!(
            p.check_ip("HOOKS.internal", "10.9.3.4".parse().expect("ip"))
                .is_ok()
        );
        assert!(p.check_ip("x", "::1".parse().expect("ip")).is_ok());
        assert!(p.check_request("https://127.0.0.1:9/").is_ok());
        for bad in ["10.0.0.0/33", "a b", "::1/200", "http://x"] {
            assert!(EgressPolicy::production().allowing(bad).is_err(), "{bad}");
        }
    }
}
