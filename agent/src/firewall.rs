//! The node's firewall rules, installed (once, idempotently) when the agent
//! starts: no container, application or build, reaches the link-local range
//! where clouds serve instance metadata and credentials (169.254.0.0/16),
//! and builds reach nothing on the node itself (its ingress, its agent, a
//! database port): a build's network traffic goes out to the internet only.

/// One rule: the chain it goes in and what it matches.
struct Rule {
    chain: &'static str,
    spec: &'static [&'static str],
    why: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        chain: "DOCKER-USER",
        spec: &["-d", "169.254.0.0/16", "-j", "DROP"],
        why: "containers reach no link-local address through the node (cloud metadata)",
    },
    Rule {
        chain: "INPUT",
        spec: &["-i", "docker0", "-d", "169.254.0.0/16", "-j", "DROP"],
        why: "containers reach no link-local address of the node itself",
    },
    Rule {
        chain: "INPUT",
        spec: &["-i", "br-+", "-d", "169.254.0.0/16", "-j", "DROP"],
        why: "containers reach no link-local address of the node itself",
    },
    Rule {
        chain: "INPUT",
        spec: &["-i", "spb-+", "-j", "DROP"],
        why: "builds reach nothing on the node",
    },
];

/// Installs the rules that are missing; answers what could not be installed
/// (the agent logs it: the node then lacks that protection).
pub async fn ensure() -> Vec<String> {
    let mut missing = Vec::new();
    for rule in RULES {
        let check = iptables("-C", rule).await;
        if check.is_ok() {
            continue;
        }
        if let Err(err) = iptables("-I", rule).await {
            missing.push(format!("{} ({}): {err}", rule.why, rule.chain));
        }
    }
    missing
}

async fn iptables(action: &str, rule: &Rule) -> Result<(), String> {
    let out = tokio::process::Command::new("iptables")
        .args(["-w", "5", action, rule.chain])
        .args(rule.spec)
        .output()
        .await
        .map_err(|e| format!("cannot run iptables: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}
