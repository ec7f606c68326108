//! Scripted fault steps (`[[nemesis.steps]]`) in campaign files: read, checked against the
//! broker and the cluster size when the campaign loads (exit 2 naming the line), shown by
//! `validate`. Nothing is started.

use ackcheck::campaign::Campaign;
use ackcheck::faults::{FaultKind, StepTarget};

const KAFKA3: &str = "broker = \"kafka\"\nnodes = 3\nmode = \"at-least-once\"\n[workload]\nkind = \"queue\"\n";

fn parse(broker_head: &str, steps: &str) -> Result<Campaign, String> {
    Campaign::parse("steps.toml", &format!("{broker_head}{steps}")).map_err(|e| e.to_string())
}

#[test]
fn steps_read_with_their_targets_and_may_overlap() {
    let c = parse(
        KAFKA3,
        "[[nemesis.steps]]\nat = 5\nfault = \"pause\"\ntarget = \"followers\"\nduration = 3\n\
         [[nemesis.steps]]\nat = 6.5\nfault = \"kill\"\ntarget = \"leader\"\nduration = 10\n\
         [[nemesis.steps]]\nat = 20\nfault = \"lose-acks\"\ntarget = \"node:2\"\nduration = 2\n",
    )
    .expect("valid steps");
    let steps = &c.nemesis.steps;
    assert_eq!(steps.len(), 3);
    assert_eq!(
        (steps[0].fault, steps[0].target),
        (FaultKind::Pause, StepTarget::Followers)
    );
    assert_eq!((steps[1].fault, steps[1].target), (FaultKind::Kill, StepTarget::Leader));
    assert_eq!(steps[2].target, StepTarget::Node(2));
    assert_eq!(steps[1].to_string(), "at 6.5 s: kill leader for 10.0 s");
    // Recorded in the history header like the rest of the campaign.
    let config = serde_json::to_value(&c).expect("serializes");
    assert_eq!(config["nemesis"]["steps"][0]["target"], "followers");
}

#[test]
fn impossible_steps_are_refused_at_load_with_the_line() {
    let step = |target: &str, fault: &str| {
        format!("[[nemesis.steps]]\nat = 1\nfault = \"{fault}\"\ntarget = \"{target}\"\nduration = 2\n")
    };
    let e = parse(KAFKA3, &step("node:3", "kill")).unwrap_err();
    assert!(e.contains("no node 3 in a cluster of 3"), "{e}");
    let e = parse(KAFKA3, &step("majority", "kill")).unwrap_err();
    assert!(e.contains("not a step target"), "{e}");
    let sqs = "broker = \"sqs\"\nmode = \"at-least-once\"\n[workload]\nkind = \"queue\"\n";
    let e = parse(sqs, &step("leader", "pause")).unwrap_err();
    assert!(e.contains("no leader to target"), "{e}");
    let e = parse(sqs, &step("all", "kill")).unwrap_err();
    assert!(e.contains("cannot take the fault \"kill\""), "{e}");
    let e = parse(
        KAFKA3,
        &format!("[nemesis]\nfaults = [\"kill\"]\n{}", step("all", "pause")),
    )
    .unwrap_err();
    assert!(e.contains("replaces the random schedule"), "{e}");
    let e = parse(
        KAFKA3,
        "[[nemesis.steps]]\nat = -1\nfault = \"kill\"\ntarget = \"all\"\nduration = 2\n",
    )
    .unwrap_err();
    assert!(e.contains("steps[0].at"), "{e}");
}
