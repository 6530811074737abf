//! `daemoneye-cli rules list`: the rule set as the pipeline last published it.

use daemoneye_lib::ipc::proto::{self, agent_response};
use daemoneye_lib::storage::RuleStatus;

use super::AgentState;

/// The loaded rules, their states, and the rules that did not load.
pub fn list(state: &AgentState) -> agent_response::Kind {
    let view = state.pipeline.rules();
    let rules = view
        .rules
        .iter()
        .map(|rule| proto::RuleInfo {
            id: rule.id.clone(),
            name: rule.name.clone(),
            severity: proto::Severity::from(rule.severity) as i32,
            mitre: rule.mitre.clone(),
            source: rule.source.clone(),
            status: match rule.state.status {
                RuleStatus::Degraded => proto::RuleStatus::Degraded,
                RuleStatus::Disabled => proto::RuleStatus::Disabled,
                RuleStatus::Ok => proto::RuleStatus::Ok,
            } as i32,
            last_error: rule.state.last_error.clone(),
            runs: rule.state.runs,
            degraded_runs: rule.state.degraded_runs,
            last_elapsed_us: rule.state.last_elapsed_us,
        })
        .collect();
    agent_response::Kind::Rules(proto::RuleList {
        rules,
        problems: view.problems.clone(),
    })
}
