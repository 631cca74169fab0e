//! Environment redaction for callers whose [`Access`] asks for it (the reader role): every
//! task spec in an answer keeps its environment's keys, and each value reads
//! [`REDACTED_ENV_VALUE`]. Part of the conversion layer: it is the only one that sees the
//! protobuf answers, and applying it to the finished answer covers every task, template and
//! workflow task in it, however the handler built it.

use tonic::Response;

use crate::app::MAX_PAGE_SIZE;
use crate::grpc::api;
use crate::grpc::authz::Access;
use crate::grpc::authz::REDACTED_ENV_VALUE;
use crate::grpc::budget::MAX_RESPONSE_ITEMS_BYTES;
use raftsched_api::MAX_API_MESSAGE_BYTES;
use raftsched_core::state::limits::MAX_ENV_VARS;
use raftsched_core::state::limits::MAX_WORKFLOW_TASKS;

/// Pages are measured against the byte budget before redaction, so a marker longer than the
/// values it replaces grows the answer: at most every item of a page (≤ 1000) with every
/// variable (≤ 64) growing by the marker's length (10 B), 640 KB, which fits the 1 MiB the
/// budget keeps under the message cap.
const _: () = assert!(
    MAX_RESPONSE_ITEMS_BYTES
        + REDACTED_ENV_VALUE.len()
            * MAX_ENV_VARS
            * if MAX_PAGE_SIZE > MAX_WORKFLOW_TASKS {
                MAX_PAGE_SIZE
            } else {
                MAX_WORKFLOW_TASKS
            }
        <= MAX_API_MESSAGE_BYTES
);

/// An answer that may hold task specs.
pub(crate) trait Redact {
    fn redact_env(&mut self);
}

/// `message` as the answer, with environment values redacted if `access` says so.
pub(crate) fn answer<T: Redact>(access: Access, mut message: T) -> Response<T> {
    if access.redact_env {
        message.redact_env();
    }
    Response::new(message)
}

impl Redact for api::TaskSpec {
    fn redact_env(&mut self) {
        if let Some(api::task_spec::Payload::Command(command)) = &mut self.payload {
            for value in command.env.values_mut() {
                *value = REDACTED_ENV_VALUE.to_string();
            }
        }
    }
}

impl<T: Redact> Redact for Option<T> {
    fn redact_env(&mut self) {
        if let Some(inner) = self {
            inner.redact_env();
        }
    }
}

impl<T: Redact> Redact for Vec<T> {
    fn redact_env(&mut self) {
        self.iter_mut().for_each(Redact::redact_env);
    }
}

impl Redact for api::Task {
    fn redact_env(&mut self) {
        self.spec.redact_env();
    }
}

impl Redact for api::Schedule {
    fn redact_env(&mut self) {
        if let Some(spec) = &mut self.spec {
            spec.template.redact_env();
        }
    }
}

impl Redact for api::WorkflowTask {
    fn redact_env(&mut self) {
        self.task.redact_env();
    }
}

impl Redact for api::Workflow {
    fn redact_env(&mut self) {
        self.tasks.redact_env();
    }
}

/// The answers that carry tasks, templates or workflows: each redacts what it holds.
macro_rules! redact_fields {
    ($($message:ty => $($field:ident),+;)+) => {
        $(impl Redact for $message {
            fn redact_env(&mut self) {
                $(self.$field.redact_env();)+
            }
        })+
    };
}

redact_fields! {
    api::SubmitTaskResponse => task;
    api::GetTaskResponse => task;
    api::ListTasksResponse => tasks;
    api::CancelTaskResponse => task;
    api::TriggerScheduleResponse => task;
    api::ScheduleResponse => schedule;
    api::ListSchedulesResponse => schedules;
    api::WorkflowResponse => workflow;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with_env() -> api::TaskSpec {
        api::TaskSpec {
            name: "t".into(),
            payload: Some(api::task_spec::Payload::Command(api::CommandPayload {
                command_line: "echo $TOKEN".into(),
                env: [
                    ("TOKEN".to_string(), "s3cret".to_string()),
                    ("EMPTY".to_string(), String::new()),
                ]
                .into_iter()
                .collect(),
            })),
            ..Default::default()
        }
    }

    fn env_of(spec: &api::TaskSpec) -> Vec<(String, String)> {
        let Some(api::task_spec::Payload::Command(command)) = &spec.payload else {
            panic!("a command spec");
        };
        let mut env: Vec<_> = command.env.clone().into_iter().collect();
        env.sort();
        env
    }

    fn redacted_env() -> Vec<(String, String)> {
        vec![
            ("EMPTY".to_string(), REDACTED_ENV_VALUE.to_string()),
            ("TOKEN".to_string(), REDACTED_ENV_VALUE.to_string()),
        ]
    }

    fn task() -> api::Task {
        api::Task {
            id: 1,
            spec: Some(spec_with_env()),
            ..Default::default()
        }
    }

    #[test]
    fn every_task_of_every_answer_keeps_its_keys_and_loses_its_values() {
        let list = api::ListTasksResponse {
            tasks: vec![task(), task()],
            next_page_token: String::new(),
        };
        let redacted = answer(
            Access {
                redact_env: true,
                ..Access::full()
            },
            list.clone(),
        )
        .into_inner();
        for task in &redacted.tasks {
            assert_eq!(env_of(task.spec.as_ref().unwrap()), redacted_env());
            let Some(api::task_spec::Payload::Command(command)) = &task.spec.as_ref().unwrap().payload else {
                unreachable!()
            };
            assert_eq!(command.command_line, "echo $TOKEN", "only env values are redacted");
        }
        assert_eq!(answer(Access::full(), list.clone()).into_inner(), list);

        let workflow = api::WorkflowResponse {
            workflow: Some(api::Workflow {
                tasks: vec![api::WorkflowTask {
                    key: "k".into(),
                    task: Some(task()),
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let redacted = answer(
            Access {
                redact_env: true,
                ..Access::full()
            },
            workflow,
        )
        .into_inner();
        let spec = redacted.workflow.unwrap().tasks[0].task.clone().unwrap().spec.unwrap();
        assert_eq!(env_of(&spec), redacted_env());

        let schedule = api::ScheduleResponse {
            schedule: Some(api::Schedule {
                spec: Some(api::ScheduleSpec {
                    template: Some(spec_with_env()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            created: false,
        };
        let redacted = answer(
            Access {
                redact_env: true,
                ..Access::full()
            },
            schedule,
        )
        .into_inner();
        let template = redacted.schedule.unwrap().spec.unwrap().template.unwrap();
        assert_eq!(env_of(&template), redacted_env());

        let got = answer(
            Access {
                redact_env: true,
                ..Access::full()
            },
            api::GetTaskResponse { task: Some(task()) },
        )
        .into_inner();
        assert_eq!(env_of(got.task.unwrap().spec.as_ref().unwrap()), redacted_env());
    }
}
