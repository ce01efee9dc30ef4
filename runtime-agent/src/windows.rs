//! The Windows Firewall applier.
//!
//! The local firewall store has no multi-rule transaction, so the swap uses
//! generation-tagged groups: the
//! bundle's `rules.ps1` creates every rule *disabled* in a new group
//! `ringfence-<generation>-<a|b>` (the script takes `-Group NAME`), then:
//!
//! 1. the new group's block rules are enabled (the node now blocks the
//!    union of old and new blocks: never broader than either end state);
//! 2. the old groups' allow rules are removed;
//! 3. the new group's allow rules are enabled;
//! 4. the old groups are removed.
//!
//! A failure while creating or before step 2 removes the new group, leaving
//! the old rules as they were; a later failure is reported as dirty so the
//! agent re-applies its last-known-good bundle. Windows Firewall has no
//! per-rule counters, so counters read zero. This applier cannot run here:
//! its tests check command construction, ordering and failure handling
//! through a recording [`Runner`].

use std::path::Path;

use serde_json::Value;

use crate::applier::{Applier, ApplyError};
use crate::exec::{Cmd, Runner};
use crate::live::{LiveChain, LiveRule, Snapshot};

/// The rules script of a Windows bundle.
pub const SCRIPT_FILE: &str = "rules.ps1";
/// The machine-readable rule list that comes with it.
pub const RULES_JSON: &str = "rules.json";
/// Prefix of every group the agent owns.
pub const GROUP_PREFIX: &str = "ringfence-";

/// Applies `rules.ps1` with PowerShell.
pub struct WindowsApplier<R: Runner> {
    runner: R,
}

const PS: &str = "powershell.exe";
const PS_ARGS: [&str; 4] = [
    "-NoProfile",
    "-NonInteractive",
    "-ExecutionPolicy",
    "Bypass",
];

/// Quote for a PowerShell single-quoted string.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl<R: Runner> WindowsApplier<R> {
    /// An applier running PowerShell through `runner`.
    pub fn new(runner: R) -> Self {
        WindowsApplier { runner }
    }

    fn command(&self, script: &str) -> Cmd {
        let mut args: Vec<&str> = PS_ARGS.to_vec();
        args.extend(["-Command", script]);
        Cmd::new(PS, args)
    }

    fn run(&self, step: &'static str, cmd: Cmd, dirty: bool) -> Result<Vec<u8>, ApplyError> {
        let fail = |m: String| ApplyError {
            step,
            message: m,
            dirty,
        };
        let out = self.runner.run(&cmd).map_err(|e| fail(e.to_string()))?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(fail(format!("`{cmd}` failed: {}", out.stderr_text())))
        }
    }

    /// Enable (or remove) the rules of `group` whose action is `action`.
    fn each(&self, group: &str, action: &str, verb: &str) -> Cmd {
        self.command(&format!(
            "Get-NetFirewallRule -Group {} | Where-Object {{ $_.Action -eq {} }} | {verb}",
            quote(group),
            quote(action)
        ))
    }

    fn groups(&self) -> Result<Vec<String>, ApplyError> {
        let mut groups: Vec<String> = self
            .read_rules()?
            .iter()
            .filter_map(|r| r.get("Group").and_then(Value::as_str).map(str::to_string))
            .collect();
        groups.sort();
        groups.dedup();
        Ok(groups)
    }

    fn read_rules(&self) -> Result<Vec<Value>, ApplyError> {
        let out = self.run(
            "read",
            self.command(&format!(
                "Get-NetFirewallRule -Group {} | ConvertTo-Json -Depth 3",
                quote(&format!("{GROUP_PREFIX}*"))
            )),
            false,
        )?;
        if out.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        // ConvertTo-Json writes a lone object for a single rule.
        match serde_json::from_slice(&out) {
            Ok(Value::Array(a)) => Ok(a),
            Ok(o @ Value::Object(_)) => Ok(vec![o]),
            Ok(other) => Err(ApplyError::clean(
                "read",
                format!("unexpected JSON: {other}"),
            )),
            Err(e) => Err(ApplyError::clean(
                "read",
                format!("Get-NetFirewallRule JSON: {e}"),
            )),
        }
    }
}

/// An enum field as text: ConvertTo-Json writes enums as numbers.
fn enum_text(v: Option<&Value>, names: &[(u64, &str)]) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| names.iter().find(|(k, _)| *k == n))
            .map_or_else(|| n.to_string(), |(_, s)| s.to_string()),
        Some(Value::Bool(b)) => if *b { "True" } else { "False" }.to_string(),
        _ => String::new(),
    }
}

impl<R: Runner> Applier for WindowsApplier<R> {
    fn name(&self) -> &'static str {
        "windows-firewall"
    }

    fn files(&self) -> &'static [&'static str] {
        &[SCRIPT_FILE, RULES_JSON]
    }

    fn check(&self, dir: &Path) -> Result<(), ApplyError> {
        // Parse only: PowerShell's own parser, nothing executed.
        let script = dir.join(SCRIPT_FILE);
        let cmd = self.command(&format!(
            "$e = $null; [System.Management.Automation.Language.Parser]::ParseFile({}, [ref]$null, [ref]$e) | Out-Null; if ($e.Count) {{ $e | ForEach-Object {{ [Console]::Error.WriteLine($_.ToString()) }}; exit 1 }}",
            quote(&script.to_string_lossy())
        ));
        self.run("check", cmd, false).map(drop)
    }

    fn apply(&self, dir: &Path, generation: u64) -> Result<(), ApplyError> {
        let old = self.groups()?;
        // Re-applying the generation in force must not reuse its group.
        let new = ["a", "b"]
            .iter()
            .map(|s| format!("{GROUP_PREFIX}{generation}-{s}"))
            .find(|g| !old.contains(g))
            .unwrap_or_else(|| format!("{GROUP_PREFIX}{generation}-a"));
        let undo = || {
            // Best effort: the failure being reported matters more.
            let _ = self.run(
                "undo",
                self.command(&format!("Remove-NetFirewallRule -Group {}", quote(&new))),
                false,
            );
        };
        let mut create: Vec<String> = PS_ARGS.iter().map(|s| s.to_string()).collect();
        create.extend([
            "-File".into(),
            dir.join(SCRIPT_FILE).to_string_lossy().into_owned(),
            "-Group".into(),
            new.clone(),
        ]);
        let steps_clean = [
            ("create", Cmd::new(PS, &create)),
            (
                "enable-blocks",
                self.each(&new, "Block", "Enable-NetFirewallRule"),
            ),
        ];
        for (step, cmd) in steps_clean {
            if let Err(e) = self.run(step, cmd, false) {
                undo();
                return Err(e);
            }
        }
        for g in old.iter().filter(|g| **g != new) {
            self.run(
                "remove-old-allows",
                self.each(g, "Allow", "Remove-NetFirewallRule"),
                true,
            )?;
        }
        self.run(
            "enable-allows",
            self.each(&new, "Allow", "Enable-NetFirewallRule"),
            true,
        )?;
        for g in old.iter().filter(|g| **g != new) {
            self.run(
                "remove-old",
                self.command(&format!("Remove-NetFirewallRule -Group {}", quote(g))),
                true,
            )?;
        }
        Ok(())
    }

    fn read(&self) -> Result<Option<Snapshot>, ApplyError> {
        let rules = self.read_rules()?;
        if rules.is_empty() {
            return Ok(None);
        }
        let mut chains: Vec<LiveChain> = Vec::new();
        let mut sorted: Vec<&Value> = rules.iter().collect();
        sorted.sort_by_key(|r| r.get("Name").and_then(Value::as_str).unwrap_or(""));
        for r in sorted {
            let direction = enum_text(r.get("Direction"), &[(1, "Inbound"), (2, "Outbound")]);
            let expr = serde_json::json!({
                "name": r.get("Name"),
                "action": enum_text(r.get("Action"), &[(2, "Allow"), (4, "Block")]),
                "enabled": enum_text(r.get("Enabled"), &[(1, "True"), (2, "False")]),
            })
            .to_string();
            let rule = LiveRule {
                comment: r
                    .get("Description")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
                expr,
                packets: 0,
                bytes: 0,
            };
            match chains.iter_mut().find(|c| c.name == direction) {
                Some(c) => c.rules.push(rule),
                None => chains.push(LiveChain {
                    name: direction,
                    spec: String::new(),
                    rules: vec![rule],
                }),
            }
        }
        Ok(Some(
            Snapshot {
                chains,
                sets: Vec::new(),
                table: None,
            }
            .sorted(),
        ))
    }

    fn deny_files(&self) -> Result<Vec<(&'static str, &'static str)>, ApplyError> {
        Err(ApplyError::clean(
            "initial-deny",
            "--initial deny is not supported on Windows nodes (the firewall's default inbound policy applies until the first bundle)",
        ))
    }

    fn remove(&self) -> Result<(), ApplyError> {
        for g in self.groups()? {
            self.run(
                "remove",
                self.command(&format!("Remove-NetFirewallRule -Group {}", quote(&g))),
                true,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::exec::{ExecError, Output};

    /// Records every command; answers reads with `rules` and fails the
    /// command whose text contains `fail_on`.
    struct Recorder {
        calls: Mutex<Vec<String>>,
        rules: String,
        fail_on: Option<&'static str>,
    }

    impl Runner for Recorder {
        fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
            // Unquoted, so tests can look for the PowerShell text itself.
            let text = format!("{} {}", cmd.program, cmd.args.join(" "));
            self.calls.lock().unwrap().push(text.clone());
            let failed = self.fail_on.is_some_and(|f| text.contains(f));
            let read = text.contains("ConvertTo-Json");
            Ok(Output {
                code: Some(if failed { 1 } else { 0 }),
                stdout: if read {
                    self.rules.clone().into_bytes()
                } else {
                    Vec::new()
                },
                stderr: if failed {
                    b"Access denied".to_vec()
                } else {
                    Vec::new()
                },
            })
        }
    }

    fn applier(fail_on: Option<&'static str>) -> WindowsApplier<Recorder> {
        WindowsApplier::new(Recorder {
            calls: Mutex::new(Vec::new()),
            rules: r#"[{"Name":"rf-4-r1","Group":"ringfence-4-a","Description":"r1","Action":2,"Enabled":1,"Direction":1},
                       {"Name":"rf-4-r2","Group":"ringfence-4-a","Description":"r2","Action":4,"Enabled":1,"Direction":1}]"#
                .into(),
            fail_on,
        })
    }

    fn calls(a: &WindowsApplier<Recorder>) -> Vec<String> {
        a.runner.calls.lock().unwrap().clone()
    }

    #[test]
    fn swap_adds_blocks_before_removing_old_allows_and_enables_new_allows_last() {
        let a = applier(None);
        a.apply(Path::new("C:/state/staged"), 5).unwrap();
        let c = calls(&a);
        let pos = |needle: &str| {
            c.iter()
                .position(|x| x.contains(needle))
                .unwrap_or_else(|| panic!("no call with {needle}: {c:#?}"))
        };
        let create = pos("-File C:/state/staged/rules.ps1 -Group ringfence-5-a");
        let blocks =
            pos("-Group 'ringfence-5-a' | Where-Object { $_.Action -eq 'Block' } | Enable");
        let old_allows =
            pos("-Group 'ringfence-4-a' | Where-Object { $_.Action -eq 'Allow' } | Remove");
        let allows =
            pos("-Group 'ringfence-5-a' | Where-Object { $_.Action -eq 'Allow' } | Enable");
        let old = pos("Remove-NetFirewallRule -Group 'ringfence-4-a'");
        assert!(create < blocks && blocks < old_allows && old_allows < allows && allows < old);
        assert!(c[create].starts_with(
            "powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -File"
        ));
    }

    #[test]
    fn a_failed_create_removes_the_new_group_and_keeps_the_old() {
        let a = applier(Some("-File"));
        let e = a.apply(Path::new("/s"), 5).unwrap_err();
        assert!(!e.dirty && e.step == "create", "{e:?}");
        assert!(e.message.contains("Access denied"));
        let c = calls(&a);
        assert!(
            c.last()
                .unwrap()
                .ends_with("Remove-NetFirewallRule -Group 'ringfence-5-a'")
        );
        assert!(!c.iter().any(|x| x.contains("ringfence-4-a")), "{c:#?}");
    }

    #[test]
    fn a_failure_after_old_allows_went_is_dirty() {
        let a = applier(Some(
            "'ringfence-5-a' | Where-Object { $_.Action -eq 'Allow' }",
        ));
        let e = a.apply(Path::new("/s"), 5).unwrap_err();
        assert!(e.dirty && e.step == "enable-allows", "{e:?}");
    }

    #[test]
    fn reapplying_the_generation_in_force_uses_the_other_group() {
        let a = applier(None);
        a.apply(Path::new("/s"), 4).unwrap();
        assert!(calls(&a).iter().any(|x| x.contains("-Group ringfence-4-b")));
    }

    #[test]
    fn read_back_maps_descriptions_to_rule_ids() {
        let a = applier(None);
        let s = a.read().unwrap().unwrap();
        assert_eq!(s.chains[0].name, "Inbound");
        assert_eq!(s.comments().into_iter().collect::<Vec<_>>(), ["r1", "r2"]);
        assert!(s.chains[0].rules[1].expr.contains(r#""action":"Block""#));
    }
}
