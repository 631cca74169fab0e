//! `raftsched chaos`: a seeded fault-injection run of real node and worker processes.

use clap::Args;

#[derive(Args, Debug)]
pub struct ChaosArgs {}

pub async fn run(_args: ChaosArgs, _json: bool) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
