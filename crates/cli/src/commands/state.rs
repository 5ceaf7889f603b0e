use proxcage_core::{ContainerId, ErrorKind, Phase};

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
        Err(e) => return Err(e.into()),
    };
    print(&state.to_pretty_json())?;
    Ok(0)
}
