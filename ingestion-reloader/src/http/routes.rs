//! The routes of the REST API with their OpenAPI operations, from the handlers' annotations: the
//! service and its document come from the same list, so they cannot drift apart.

use std::sync::Arc;

use utoipa_axum::{router::OpenApiRouter, routes};

use super::{erasures, jobs, reads, reingestion};
use crate::engine::Engine;

/// Every API route (operational routes are merged by [`super::app`]).
pub fn router() -> OpenApiRouter<Arc<Engine>> {
    OpenApiRouter::new()
        .routes(routes!(reingestion::start_topic))
        .routes(routes!(reingestion::start_file))
        .routes(routes!(reingestion::start_key))
        .routes(routes!(reingestion::stop_topic))
        .routes(routes!(jobs::list_jobs))
        .routes(routes!(jobs::get_job, jobs::stop_job))
        .routes(routes!(jobs::resume_job))
        .routes(routes!(reads::messages))
        .routes(routes!(reads::files))
        .routes(routes!(erasures::start, erasures::list))
        .routes(routes!(reads::folders))
        .routes(routes!(reads::count))
}
