//! `features`: what the default backend supports, and which backends proxcage routes to.

use super::print;
use crate::config::BACKENDS;
use crate::context::Ctx;

pub fn features(ctx: &Ctx<'_>) -> anyhow::Result<i32> {
    let config = ctx.config()?;
    let backend = ctx.backend(&config.default_backend)?;
    let mut features = backend.features()?;
    if !features["annotations"].is_object() {
        features["annotations"] = serde_json::json!({});
    }
    features["annotations"]["io.proxcage.backends"] = BACKENDS.join(",").into();
    features["annotations"]["io.proxcage.default-backend"] = config.default_backend.clone().into();
    features["annotations"]["io.proxcage.version"] = env!("CARGO_PKG_VERSION").into();
    print(&serde_json::to_string_pretty(&features)?)?;
    Ok(0)
}
