//! `raftsched bench`: the load generator (see scripts/bench.sh).

use clap::Args;
use raftsched::client::ClusterClient;

#[derive(Args, Debug)]
pub struct BenchArgs {}

pub async fn run(_args: BenchArgs, _client: &ClusterClient, _json: bool) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
