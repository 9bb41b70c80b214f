//! run: the supervisor, as the main process of compose@STACK.service.

use crate::context::{Context, block_on};
use crate::error::{Error, Result};
use crate::model::StackName;
use crate::output::{Report, Streamed};
use crate::supervisor::{self, Ending};

pub fn run(ctx: &Context, name: &StackName) -> Result<Box<dyn Report>> {
    supervisor::init_logging(name);
    let root = ctx.load()?;
    let stack = root.stack(name)?;
    match block_on(async { Ok(supervisor::run(&root, stack, ctx.mode).await?) })? {
        Ending::Stopped => Ok(Box::new(Streamed)),
        Ending::Restart(reason) => Err(Error::Restart(reason)),
    }
}
