//! The Scheduler: places an application or a managed database on a node.
//! Placements are serialised here and recorded on the entity's row before the
//! answer, so two placements never count the same free capacity twice.
//!
//! Rule: an application stays on its node while that node is online or
//! degraded and has room for what it now needs (its own reservation there
//! counts as free). Otherwise, when it may move, it goes to an online node of
//! its region with enough unreserved CPU and memory, the one with the most free
//! memory (spread first; capacity fills up evenly); a degraded node (under
//! sustained pressure) only when no online node has room. Offline and disabled
//! nodes never receive new work. Placement counts reservations (plans), never
//! a momentary CPU figure. An application whose image lives only on its node
//! may not move: the answer then says why it cannot be placed.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use skypanel_domain::lifecycle::NodeStatus;
use skypanel_store::reports::{self, NodeCapacity};

use crate::context::Context;
use crate::error::Error;

/// What is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    App(i64),
    Database(i64),
}

/// What an application or database needs.
#[derive(Debug, Clone)]
pub struct Requirement {
    pub entity: Placed,
    pub region: String,
    /// Millicores for all its instances.
    pub cpu: i64,
    /// MB for all its instances.
    pub memory: i64,
    /// The node it is on now, if any.
    pub current: Option<i64>,
    /// What it reserves on that node now (millicores, MB): free for itself.
    pub held: (i64, i64),
    /// Whether it may go to another node (its image can be had there).
    pub may_move: bool,
}

pub enum SchedulerMsg {
    Place(Requirement, RpcReplyPort<Result<i64, Error>>),
}

/// The placement rule (see the module documentation).
pub fn choose(nodes: &[NodeCapacity], need: &Requirement) -> Result<i64, Error> {
    let in_region: Vec<&NodeCapacity> = nodes.iter().filter(|n| n.region == need.region).collect();
    let free = |n: &NodeCapacity| {
        let (held_cpu, held_memory) = if Some(n.node_id) == need.current {
            need.held
        } else {
            (0, 0)
        };
        (
            i64::from(n.cpu_total) - n.cpu_allocated + held_cpu,
            i64::from(n.memory_total) - n.memory_allocated + held_memory,
        )
    };
    let fits = |n: &NodeCapacity| {
        let (cpu, memory) = free(n);
        cpu >= need.cpu && memory >= need.memory
    };
    if let Some(current) = need
        .current
        .and_then(|id| in_region.iter().find(|n| n.node_id == id))
    {
        let status = current.status.parse::<NodeStatus>().ok();
        let up = matches!(status, Some(NodeStatus::Online | NodeStatus::Degraded));
        if up && fits(current) {
            return Ok(current.node_id);
        }
        if !need.may_move {
            return Err(Error::NoCapacity(match (up, need.entity) {
                (true, Placed::App(_)) => format!(
                    "the node running this application has no room for {} millicores and {} MB; \
                     scale down or pick a smaller plan",
                    need.cpu, need.memory
                ),
                (true, Placed::Database(_)) => format!(
                    "the node holding this database's data has no room for {} millicores and {} MB; \
                     pick a smaller plan or free room on it",
                    need.cpu, need.memory
                ),
                (false, Placed::App(_)) => format!(
                    "the node running this application is {}; its image lives there, so \
                     deploy again to build it on another node",
                    current.status
                ),
                (false, Placed::Database(_)) => format!(
                    "the node holding this database's data is {}; try again once it is back",
                    current.status
                ),
            }));
        }
    }
    let with_status = |status: NodeStatus| {
        in_region
            .iter()
            .filter(move |n| n.status == status.as_str())
            .collect::<Vec<_>>()
    };
    let (online, degraded) = (
        with_status(NodeStatus::Online),
        with_status(NodeStatus::Degraded),
    );
    if online.is_empty() && degraded.is_empty() {
        return Err(Error::NoCapacity(format!(
            "no node is available in region \"{}\"; try again later or pick another region",
            need.region
        )));
    }
    let roomiest = |nodes: &[&&NodeCapacity]| {
        nodes
            .iter()
            .filter(|n| fits(n))
            .max_by_key(|n| (free(n).1, free(n).0, -n.node_id))
            .map(|n| n.node_id)
    };
    roomiest(&online)
        .or_else(|| roomiest(&degraded))
        .ok_or_else(|| {
            Error::NoCapacity(format!(
                "no node in region \"{}\" has room for {} millicores and {} MB right now; \
                 scale down, pick a smaller plan or another region",
                need.region, need.cpu, need.memory
            ))
        })
}

/// Asks the Scheduler for a node for `need` (recorded on the entity's row
/// before the answer).
pub(crate) async fn place(ctx: &Context, need: Requirement) -> Result<i64, Error> {
    let scheduler: ActorRef<SchedulerMsg> = ractor::registry::where_is(ctx.name("scheduler"))
        .ok_or_else(|| Error::Unavailable("the scheduler is not running".into()))?
        .into();
    let answer = scheduler
        .call(
            |reply| SchedulerMsg::Place(need, reply),
            Some(std::time::Duration::from_secs(10)),
        )
        .await?;
    match answer {
        ractor::rpc::CallResult::Success(result) => result,
        _ => Err(Error::Unavailable("the scheduler did not answer".into())),
    }
}

#[derive(Default)]
pub struct Scheduler;

impl Actor for Scheduler {
    type Msg = SchedulerMsg;
    type State = Context;
    type Arguments = Context;

    async fn pre_start(
        &self,
        _myself: ActorRef<SchedulerMsg>,
        ctx: Context,
    ) -> Result<Context, ActorProcessingErr> {
        Ok(ctx)
    }

    async fn handle(
        &self,
        _myself: ActorRef<SchedulerMsg>,
        message: SchedulerMsg,
        ctx: &mut Context,
    ) -> Result<(), ActorProcessingErr> {
        let SchedulerMsg::Place(need, reply) = message;
        let placed = async {
            let mut conn = ctx.store().conn().await?;
            let nodes = reports::node_capacity(&mut conn).await?;
            let node = choose(&nodes, &need)?;
            if need.current != Some(node) {
                match need.entity {
                    Placed::App(id) => skypanel_store::apps::place(&mut conn, id, node).await?,
                    Placed::Database(id) => {
                        skypanel_store::databases::place(&mut conn, id, node).await?
                    }
                }
                tracing::info!(entity = ?need.entity, node_id = node, "placed");
            }
            Ok::<_, Error>(node)
        }
        .await;
        let _ = reply.send(placed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(
        id: i64,
        region: &str,
        status: &str,
        cpu: (i32, i64),
        memory: (i32, i64),
    ) -> NodeCapacity {
        NodeCapacity {
            node_id: id,
            name: format!("n{id}"),
            region: region.into(),
            status: status.into(),
            cpu_total: cpu.0,
            cpu_used: 0,
            memory_total: memory.0,
            memory_used: 0,
            disk_total: 0,
            disk_used: 0,
            container_count: 0,
            cpu_allocated: cpu.1,
            memory_allocated: memory.1,
            applications: 0,
            databases: 0,
        }
    }

    fn need(cpu: i64, memory: i64, current: Option<i64>) -> Requirement {
        Requirement {
            entity: Placed::App(1),
            region: "eu".into(),
            cpu,
            memory,
            current,
            held: if current.is_some() {
                (cpu, memory)
            } else {
                (0, 0)
            },
            may_move: true,
        }
    }

    #[test]
    fn spreads_to_the_node_with_most_free_memory() {
        let nodes = [
            node(1, "eu", "online", (4000, 0), (8192, 6000)),
            node(2, "eu", "online", (4000, 0), (8192, 1000)),
            node(3, "us", "online", (4000, 0), (65536, 0)),
        ];
        assert_eq!(choose(&nodes, &need(500, 512, None)).unwrap(), 2);
    }

    #[test]
    fn never_places_on_unhealthy_nodes_or_without_room() {
        let nodes = [
            node(1, "eu", "offline", (4000, 0), (8192, 0)),
            node(3, "eu", "disabled", (4000, 0), (8192, 0)),
        ];
        let err = choose(&nodes, &need(500, 512, None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no node is available in region \"eu\""),
            "{err}"
        );
        let full = [node(4, "eu", "online", (1000, 800), (1024, 0))];
        let err = choose(&full, &need(500, 512, None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("has room"), "{err}");
    }

    #[test]
    fn a_degraded_node_takes_work_only_when_no_online_node_has_room() {
        let nodes = [
            node(1, "eu", "degraded", (4000, 0), (16384, 0)),
            node(2, "eu", "online", (4000, 0), (8192, 7000)),
        ];
        assert_eq!(choose(&nodes, &need(500, 512, None)).unwrap(), 2);
        assert_eq!(
            choose(&nodes, &need(500, 2048, None)).unwrap(),
            1,
            "the online node is full: the degraded one, rather than nothing"
        );
    }

    #[test]
    fn stays_on_its_node_while_it_is_up() {
        let nodes = [
            node(1, "eu", "degraded", (1000, 1000), (1024, 1024)),
            node(2, "eu", "online", (8000, 0), (16384, 0)),
        ];
        assert_eq!(choose(&nodes, &need(1000, 1024, Some(1))).unwrap(), 1);
        let moved = [
            node(1, "eu", "offline", (1000, 1000), (1024, 1024)),
            node(2, "eu", "online", (8000, 0), (16384, 0)),
        ];
        assert_eq!(choose(&moved, &need(1000, 1024, Some(1))).unwrap(), 2);
    }

    #[test]
    fn growing_counts_its_own_reservation_once_and_may_be_refused() {
        // The app holds 1000/1024 of node 1's 2000/2048; it may double, not triple.
        let nodes = [node(1, "eu", "online", (2000, 1000), (2048, 1024))];
        let mut grow = need(2000, 2048, Some(1));
        grow.held = (1000, 1024);
        grow.may_move = false;
        assert_eq!(choose(&nodes, &grow).unwrap(), 1);
        grow.cpu = 3000;
        grow.memory = 3072;
        let err = choose(&nodes, &grow).unwrap_err().to_string();
        assert!(err.contains("no room"), "{err}");
        // A full node with a roomy neighbour: a movable app moves.
        let nodes = [
            node(1, "eu", "online", (2000, 1000), (2048, 1024)),
            node(2, "eu", "online", (8000, 0), (16384, 0)),
        ];
        grow.may_move = true;
        assert_eq!(choose(&nodes, &grow).unwrap(), 2);
        // An app that may not move stays put only on a live node.
        let nodes = [
            node(1, "eu", "offline", (2000, 1000), (2048, 1024)),
            node(2, "eu", "online", (8000, 0), (16384, 0)),
        ];
        let stuck = Requirement {
            may_move: false,
            ..need(1000, 1024, Some(1))
        };
        let err = choose(&nodes, &stuck).unwrap_err().to_string();
        assert!(err.contains("is offline"), "{err}");
    }
}
