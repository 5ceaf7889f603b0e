use proxcage_core::{ContainerId, ErrorKind};
use proxcage_store::Phase;

use super::print;
use crate::args::Id;
use crate::context::{creating_state, Ctx};

pub fn state(args: &Id, ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let id = ContainerId::new(&args.id)?;
    let (record, backend) = ctx.recorded_backend(&id)?;
    let state = match backend.state(&id) {
        Ok(state) => state,
        // Recorded, but the backend has not made it yet: a create in progress.
        Err(e) if e.kind() == ErrorKind::NotFound && record.phase() == Phase::Creating => {
            creating_state(&record)
        }
        // state takes no lock (it must answer while a long create runs), so it may have
        // met a delete or create of the same id halfway: wait for that to finish and ask
        // again.
        Err(_) => {
            let (_lock, backend) = ctx.locked_backend(&id)?;
            backend.state(&id)?
        }
    };
    print(&state.to_pretty_json())?;
    Ok(0)
}
