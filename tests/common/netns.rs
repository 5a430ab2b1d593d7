//! Real NAT topologies in Linux network namespaces, so tests and the NAT
//! benchmark can prove that roost reaches buddies behind home routers with
//! the kernel's own NAT, not with a simulation of it.
//!
//! The topology ([`Net::build`]):
//! - an "internet": a bridge `br0` in namespace `<prefix>-wan`, subnet
//!   198.51.100.0/24 (TEST-NET-2), no routes anywhere else;
//! - public host `i`: namespace `<prefix>-pub<i>`, `eth0` = 198.51.100.(10+i)
//!   on the bridge;
//! - home `j`: a router namespace `<prefix>-r<j>` (`wan0` = 198.51.100.(100+j)
//!   on the bridge, `lan0` = 10.0.j.1/24) and a host namespace `<prefix>-h<j>`
//!   (`eth0` = 10.0.j.2/24, default route via its router). The router
//!   forwards, masquerades what leaves on `wan0` and drops unsolicited WAN
//!   traffic in both its input and forward hooks, as home routers do (a
//!   router that lets such a packet reach its own stack confirms a
//!   conntrack entry for it, and masquerade then moves our own flow to
//!   another port: hole punching fails).
//!
//! With [`Options::block_direct`] every router also drops what its home
//! sends to another home's WAN address: no direct path between homes can
//! exist, only one through a public host (a relay).
//!
//! Interface names live inside their namespaces (`eth0`, `wan0`, `lan0`,
//! bridge ports `p<i>`/`r<j>`), so they never clash; namespace names carry
//! the test process's pid and a sequence number, so parallel tests never
//! clash, and namespaces left by a dead test process are removed by the
//! next one. [`Net`] deletes its namespaces (killing what still runs in
//! them) when dropped, also when the test panics.
//!
//! Building needs root and the `ip` (iproute2) and `nft` (nftables) tools;
//! without them it fails the test saying so (`.ci/run` runs as root and
//! installs both).

use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

use super::Launch;

/// Every namespace of these tests starts with this, then `<pid>-<seq>-`.
const PREFIX: &str = "netns-";

/// What to build.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Hosts with a public address on the internet.
    pub public: usize,
    /// Homes: a NAT router and one host behind it.
    pub homes: usize,
    /// Routers drop everything their home sends to another home's WAN
    /// address, so homes can only meet through a public host.
    pub block_direct: bool,
}

/// A transport a daemon listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP (noise, yamux).
    Tcp,
    /// QUIC v1 over UDP.
    Quic,
}

/// A machine of the topology: a namespace and its address there.
#[derive(Clone, Debug)]
pub struct Host {
    /// The network namespace.
    pub ns: String,
    /// Its address: public on the internet, or private in its home.
    pub ip: Ipv4Addr,
}

/// A home: a NAT router and the host behind it.
#[derive(Clone, Debug)]
pub struct Home {
    /// The router; `ip` is its public (WAN) address.
    pub router: Host,
    /// The host behind it; `ip` is its private (LAN) address.
    pub host: Host,
}

/// How an attempt to open a TCP connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connect {
    /// The connection opened.
    Opened,
    /// Refused or unreachable: an answer came back.
    Refused,
    /// No answer at all: the packets were dropped on the way.
    Dropped,
}

/// A built topology; dropping it deletes every namespace of it.
pub struct Net {
    /// The internet's namespace (the bridge).
    pub wan: String,
    /// Public hosts, in order.
    pub public: Vec<Host>,
    /// Homes, in order.
    pub homes: Vec<Home>,
    /// Every namespace, in creation order.
    namespaces: Vec<String>,
}

/// The internet's subnet (TEST-NET-2).
fn internet(last: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, u8::try_from(last).expect("address fits"))
}

impl Net {
    /// Builds the topology `opts` describes; fails the test (saying what
    /// is missing) without root or the tools.
    pub fn build(opts: Options) -> Net {
        preflight();
        assert!(opts.public <= 80 && opts.homes <= 80, "too many hosts");
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{PREFIX}{}-{seq}", std::process::id());
        let mut net = Net {
            wan: format!("{prefix}-wan"),
            public: Vec::new(),
            homes: Vec::new(),
            namespaces: Vec::new(),
        };
        let wan = net.wan.clone();
        net.add_ns(&wan);
        ip(&wan, &["link", "add", "br0", "type", "bridge"]);
        ip(&wan, &["link", "set", "br0", "up"]);

        for i in 0..opts.public {
            let host = Host {
                ns: format!("{prefix}-pub{i}"),
                ip: internet(10 + i),
            };
            net.add_ns(&host.ns);
            net.plug(&host.ns, "eth0", &format!("p{i}"), host.ip);
            net.public.push(host);
        }

        for j in 0..opts.homes {
            net.add_home(&prefix, j, opts.block_direct);
        }
        net
    }

    /// Adds home `j`: a router on the internet (NAT, and with
    /// `block_direct` no path to another home) and a host on its LAN.
    fn add_home(&mut self, prefix: &str, j: usize, block_direct: bool) {
        let router = Host {
            ns: format!("{prefix}-r{j}"),
            ip: internet(100 + j),
        };
        let lan = |last| Ipv4Addr::new(10, 0, u8::try_from(j).expect("fits"), last);
        let host = Host {
            ns: format!("{prefix}-h{j}"),
            ip: lan(2),
        };
        self.add_ns(&router.ns);
        self.add_ns(&host.ns);
        self.plug(&router.ns, "wan0", &format!("r{j}"), router.ip);
        ip(
            &router.ns,
            &[
                "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", &host.ns,
            ],
        );
        ip(
            &router.ns,
            &["addr", "add", &format!("{}/24", lan(1)), "dev", "lan0"],
        );
        ip(&router.ns, &["link", "set", "lan0", "up"]);
        ip(
            &host.ns,
            &["addr", "add", &format!("{}/24", host.ip), "dev", "eth0"],
        );
        ip(&host.ns, &["link", "set", "eth0", "up"]);
        ip(
            &host.ns,
            &["route", "add", "default", "via", &lan(1).to_string()],
        );
        run(
            &[
                "ip",
                "netns",
                "exec",
                &router.ns,
                "bash",
                "-c",
                "echo 1 > /proc/sys/net/ipv4/ip_forward",
            ],
            None,
        );
        let rules = router_rules(block_direct.then(|| (internet(100), internet(199))));
        run(
            &["ip", "netns", "exec", &router.ns, "nft", "-f", "-"],
            Some(&rules),
        );
        self.homes.push(Home { router, host });
    }

    /// Creates namespace `ns` with its loopback up (daemons serve their
    /// local API on 127.0.0.1 there); remembered for deletion.
    fn add_ns(&mut self, ns: &str) {
        run(&["ip", "netns", "add", ns], None);
        self.namespaces.push(ns.to_string());
        ip(ns, &["link", "set", "lo", "up"]);
    }

    /// Connects `ns` to the internet's bridge: `dev` in `ns` with address
    /// `addr`/24, its peer `port` on the bridge.
    fn plug(&self, ns: &str, dev: &str, port: &str, addr: Ipv4Addr) {
        ip(
            ns,
            &[
                "link", "add", dev, "type", "veth", "peer", "name", port, "netns", &self.wan,
            ],
        );
        ip(&self.wan, &["link", "set", port, "master", "br0", "up"]);
        ip(ns, &["addr", "add", &format!("{addr}/24"), "dev", dev]);
        ip(ns, &["link", "set", dev, "up"]);
    }
}

/// The router's nftables ruleset: masquerade on `wan0`; from `wan0` only
/// replies (established/related), in the input hook as well as forward;
/// with `block`, nothing forwarded to that range of WAN addresses (refused
/// at once, so a dial there fails fast rather than timing out).
fn router_rules(block: Option<(Ipv4Addr, Ipv4Addr)>) -> String {
    let block = block
        .map(|(from, to)| format!("oifname \"wan0\" ip daddr {from}-{to} reject"))
        .unwrap_or_default();
    format!(
        r#"
table ip nat {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" masquerade
    }}
}}
table inet filter {{
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "wan0" ct state established,related accept
        iifname "wan0" drop
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        {block}
        iifname "wan0" ct state established,related accept
        iifname "wan0" drop
    }}
}}
"#
    )
}

impl Host {
    /// This host's address on `transport` at roost's default port (every
    /// host has a namespace of its own, so the port is always free).
    pub fn addr(&self, transport: Transport) -> String {
        let port = roost::config::DEFAULT_PORT;
        match transport {
            Transport::Tcp => format!("/ip4/{}/tcp/{port}", self.ip),
            Transport::Quic => format!("/ip4/{}/udp/{port}/quic-v1", self.ip),
        }
    }

    /// How to start a daemon here listening on `transports`, bootstrapping
    /// from `bootstrap`.
    pub fn launch(&self, transports: &[Transport], bootstrap: &[String]) -> Launch {
        Launch {
            netns: Some(self.ns.clone()),
            listen: transports.iter().map(|t| self.addr(*t)).collect(),
            bootstrap: bootstrap.to_vec(),
            args: Vec::new(),
            log: log_path(&self.ns),
        }
    }

    /// Runs `args` in this namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ip netns exec")
    }

    /// Tries to open a TCP connection from here to `to:port` (bash's
    /// `/dev/tcp`), giving up after two seconds without an answer.
    pub fn tcp_connect(&self, to: Ipv4Addr, port: u16) -> Connect {
        let out = self.exec(&[
            "timeout",
            "2",
            "bash",
            "-c",
            &format!("exec 3<>/dev/tcp/{to}/{port}"),
        ]);
        match out.status.code() {
            Some(0) => Connect::Opened,
            Some(124) => Connect::Dropped,
            _ => Connect::Refused,
        }
    }
}

/// `ip -n NS ARGS…`, which must succeed.
fn ip(ns: &str, args: &[&str]) {
    let mut full = vec!["ip", "-n", ns];
    full.extend_from_slice(args);
    run(&full, None);
}

/// Runs `cmd` (with `input` on stdin), failing the test with its stderr
/// when it fails.
fn run(cmd: &[&str], input: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(cmd[0])
        .args(&cmd[1..])
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait for command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A file for the daemon log of namespace `ns` when `ROOST_NAT_LOGS` names
/// a directory (for debugging a failing topology test), else none.
fn log_path(ns: &str) -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("ROOST_NAT_LOGS")?;
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).ok()?;
    let mut n = 0;
    loop {
        let p = dir.join(format!("{ns}-{n}.log"));
        if !p.exists() {
            return Some(p);
        }
        n += 1;
    }
}

/// Root and the tools, checked once; then removes namespaces left behind
/// by test processes that no longer run.
fn preflight() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: geteuid(2) has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "the NAT tests build network namespaces and need root (uid 0, not {euid}): \
             run them as root, as .ci/run does"
        );
        for (tool, package) in [("ip", "iproute2"), ("nft", "nftables"), ("bash", "bash")] {
            let found = Command::new(tool)
                .arg("-V")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok();
            assert!(
                found,
                "the NAT tests need `{tool}`: install it (apt-get install {package}), as .ci/run does"
            );
        }
        remove_stale();
    });
}

/// Deletes the namespaces of dead test processes (their names carry the
/// pid), and kills what still runs in them.
fn remove_stale() {
    let out = run(&["ip", "netns", "list"], None);
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            delete_ns(name);
        }
    }
}

/// Kills every process in `ns` (each by its pid) and deletes it.
fn delete_ns(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: kill(2) of a process that runs in our own test
                // namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            delete_ns(ns);
        }
    }
}
