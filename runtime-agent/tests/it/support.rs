//! Shared test plumbing: network namespaces that are always deleted, keys,
//! agents wired to a namespace, and a fake kube-proxy table.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use ringfence_agent::agent::{Agent, BundleOutcome, Config, Initial};
use ringfence_agent::exec::SystemRunner;
use ringfence_agent::nft::NftApplier;
use ringfence_agent::state::StateDir;
use ringfence_bundle::{SigningKey, Trust, generate_keypair, load_signing_key};

use crate::fixture::{Spec, bundle, index};

/// A network namespace, deleted on drop.
pub(crate) struct Netns {
    pub(crate) name: String,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl Netns {
    pub(crate) fn new(tag: &str) -> Self {
        // `RINGFENCE_TEST_NETNS` prefixes the names (engineers sharing a host).
        let name = format!(
            "{}rfa-{tag}-{}-{}",
            std::env::var("RINGFENCE_TEST_NETNS").unwrap_or_default(),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`ip netns add {name}` failed (these tests run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = Netns { name };
        ns.sh("ip link set lo up");
        ns
    }

    /// Run a shell command inside the namespace; panics on failure.
    pub(crate) fn sh(&self, script: &str) -> String {
        let out = self.try_sh(script);
        assert!(out.0, "`{script}` in {} failed: {}", self.name, out.2);
        out.1
    }

    /// Run a shell command inside the namespace: (success, stdout, stderr).
    pub(crate) fn try_sh(&self, script: &str) -> (bool, String, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", script])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `nft list ruleset`, counters and handles included.
    pub(crate) fn ruleset(&self) -> String {
        self.sh("nft -a list ruleset")
    }

    /// Every table but ours, byte for byte.
    pub(crate) fn others(&self) -> String {
        self.sh("nft -a list table ip kube-proxy")
    }

    /// Our table, or "" if absent.
    pub(crate) fn ours(&self) -> String {
        self.try_sh("nft list table inet ringfence").1
    }

    /// A kube-proxy-like table with sets, a map and rules on the same hook.
    pub(crate) fn fake_kube_proxy(&self) {
        let t = "table ip kube-proxy {
    set cluster-ips {
        type ipv4_addr
        elements = { 10.96.0.1, 10.96.0.10 }
    }
    chain svc-dns {
        counter packets 0 bytes 0
    }
    map service-ips {
        type ipv4_addr . inet_proto . inet_service : verdict
        elements = { 10.96.0.10 . udp . 53 : goto svc-dns }
    }
    chain services {
        ip daddr . meta l4proto . th dport vmap @service-ips
    }
    chain filter-forward {
        type filter hook forward priority -10; policy accept;
        ct state invalid drop
        ip daddr @cluster-ips counter jump services
    }
}
";
        std::fs::write(format!("/tmp/{}.kp.nft", self.name), t).unwrap();
        self.sh(&format!("nft -f /tmp/{}.kp.nft", self.name));
        let _ = std::fs::remove_file(format!("/tmp/{}.kp.nft", self.name));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A temporary directory with a signing key pair in it.
pub(crate) struct Keys {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) key: SigningKey,
}

impl Keys {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        generate_keypair(&dir.path().join("k")).unwrap();
        let key = load_signing_key(&dir.path().join("k.key")).unwrap();
        Keys { dir, key }
    }

    pub(crate) fn pubkey(&self) -> PathBuf {
        self.dir.path().join("k.pub")
    }

    pub(crate) fn trust(&self) -> Trust {
        Trust::new([self.key.trusted()], 1)
    }

    /// The binary running `args`, trusting these keys, its state in `state`.
    pub(crate) fn cli(&self, args: &[&str], state: &Path) -> Command {
        let mut c = bin();
        c.args(args)
            .arg("--trust")
            .arg(self.pubkey())
            .arg("--state")
            .arg(state);
        c
    }

    /// A scratch path inside the temp dir.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A source directory `name` among the keys' files holding the bundle of
/// `spec` (signed by the keys) as `n1.bundle`, and its signed index.
pub(crate) fn source_dir(keys: &Keys, name: &str, spec: &Spec) -> PathBuf {
    let dir = keys.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    let b = bundle(spec, &keys.key);
    std::fs::write(dir.join("n1.bundle"), &b).unwrap();
    std::fs::write(dir.join("index.json"), index(&[(spec, &b)], &keys.key)).unwrap();
    dir
}

/// A child process, killed on drop.
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An agent for node `n1` applying inside `ns`.
pub(crate) fn agent(ns: &Netns, keys: &Keys, state: &Path, self_heal: bool) -> Agent {
    agent_with(ns, keys, state, self_heal, Initial::Allow)
}

pub(crate) fn agent_with(
    ns: &Netns,
    keys: &Keys,
    state: &Path,
    self_heal: bool,
    initial: Initial,
) -> Agent {
    Agent::new(
        Config {
            initial,
            self_heal,
            ..config(keys.trust())
        },
        open_state(state),
        nft_in(ns),
    )
}

/// [`StateDir::open`] for an agent that follows a dropped one. The tests of
/// this binary run in parallel threads, and a child another test forks holds
/// a copy of every descriptor (the lock's too) until it execs: wait that out.
pub(crate) fn open_state(state: &Path) -> StateDir {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match StateDir::open(state) {
            Ok(s) => return s,
            Err(e) if e.to_string().contains("in use") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// The configuration of an agent for node `n1` trusting `trust`: allow
/// until the first bundle, no self-heal, no membership key, no index needed.
pub(crate) fn config(trust: Trust) -> Config {
    Config {
        node: "n1".into(),
        trust,
        initial: Initial::Allow,
        self_heal: false,
        membership_trust: None,
        require_index: false,
    }
}

/// The real applier, running `nft` inside `ns`.
pub(crate) fn nft_in(ns: &Netns) -> Box<NftApplier<SystemRunner>> {
    Box::new(NftApplier::new(SystemRunner::new(Some(ns.name.clone()))))
}

/// Offer the bundle of `spec`, signed by `keys`, now; it must be applied.
pub(crate) fn apply_ok(a: &mut Agent, keys: &Keys, spec: &Spec) {
    let out = a.offer(&bundle(spec, &keys.key), None, SystemTime::now());
    assert!(
        matches!(out, BundleOutcome::Applied { generation } if generation == spec.generation),
        "{out:?}"
    );
}

/// The binary under test.
pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringfence-agent"))
}
