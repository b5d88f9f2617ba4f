//! The HTTP surface of the control plane: poem-openapi APIs for customers and
//! admins, bearer authentication, the JSON error body, the OpenAPI document
//! and its docs UI. The only crate that knows HTTP.
//!
//! A request flows: [`middleware::around`] (size limit, error mapping,
//! tracing) → poem-openapi routing → [`auth::BearerAuth`] → a handler in
//! [`api`] that validates with `domain`, reads and writes through `store`,
//! and answers a [`dto`] or an [`error::ApiError`].

pub mod api;
pub mod auth;
pub mod body;
pub mod console;
pub mod dto;
pub mod error;
pub mod git;
pub mod github;
pub mod lease_stream;
pub mod leasing;
pub mod metrics;
pub mod middleware;
pub mod moves;
pub mod quotas;
pub mod rate_limit;
pub mod registry_token;
pub mod replicas;
pub mod sessions;
pub mod state;

use poem::endpoint::make_sync;
use poem::middleware::CatchPanic;
use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::{ContactObject, LicenseObject, OpenApiService};

pub use registry_token::TokenServer;
pub use state::{AppState, Settings};

/// Every API group, in the order they appear in the spec.
pub type Apis = (
    (api::auth::AuthApi, api::account::AccountApi),
    api::apps::AppsApi,
    (api::app_commands::AppCommandsApi, api::runs::RunsApi),
    api::env::EnvApi,
    api::builds::BuildsApi,
    api::domains::DomainsApi,
    api::observe::ObserveApi,
    (
        api::github::GithubApi,
        api::github::AdminGithubApi,
        api::webhooks::WebhooksApi,
        api::hooks::HooksApi,
    ),
    (
        api::admin_platform::AdminPlatformApi,
        api::inspector::InspectorApi,
        api::admin_users::AdminUsersApi,
        api::account::AdminAccountApi,
    ),
    (
        api::catalog::CatalogApi,
        api::databases::DatabasesApi,
        api::backups::BackupsApi,
        api::backups::AdminBackupsApi,
    ),
    api::wallet::WalletApi,
    api::billing::BillingApi,
    api::admin_catalog::AdminCatalogApi,
    api::admin_nodes::AdminNodesApi,
    api::system::SystemApi,
    api::agents::AgentsApi,
);

fn apis(state: &AppState) -> Apis {
    (
        (
            api::auth::AuthApi {
                state: state.clone(),
            },
            api::account::AccountApi {
                state: state.clone(),
            },
        ),
        api::apps::AppsApi {
            state: state.clone(),
        },
        (
            api::app_commands::AppCommandsApi {
                state: state.clone(),
            },
            api::runs::RunsApi {
                state: state.clone(),
            },
        ),
        api::env::EnvApi {
            state: state.clone(),
        },
        api::builds::BuildsApi {
            state: state.clone(),
        },
        api::domains::DomainsApi {
            state: state.clone(),
        },
        api::observe::ObserveApi {
            state: state.clone(),
        },
        (
            api::github::GithubApi {
                state: state.clone(),
            },
            api::github::AdminGithubApi {
                state: state.clone(),
            },
            api::webhooks::WebhooksApi {
                state: state.clone(),
            },
            api::hooks::HooksApi {
                state: state.clone(),
            },
        ),
        (
            api::admin_platform::AdminPlatformApi {
                state: state.clone(),
            },
            api::inspector::InspectorApi {
                state: state.clone(),
            },
            api::admin_users::AdminUsersApi {
                state: state.clone(),
            },
            api::account::AdminAccountApi {
                state: state.clone(),
            },
        ),
        (
            api::catalog::CatalogApi {
                state: state.clone(),
            },
            api::databases::DatabasesApi {
                state: state.clone(),
            },
            api::backups::BackupsApi {
                state: state.clone(),
            },
            api::backups::AdminBackupsApi {
                state: state.clone(),
            },
        ),
        api::wallet::WalletApi {
            state: state.clone(),
        },
        api::billing::BillingApi {
            state: state.clone(),
        },
        api::admin_catalog::AdminCatalogApi {
            state: state.clone(),
        },
        api::admin_nodes::AdminNodesApi {
            state: state.clone(),
        },
        api::system::SystemApi {
            state: state.clone(),
        },
        api::agents::AgentsApi {
            state: state.clone(),
        },
    )
}

/// The operations and the document describing them.
pub type ApiService = OpenApiService<Apis, ()>;

/// The OpenAPI service: the operations and the document describing them.
pub fn openapi_service(state: &AppState) -> ApiService {
    OpenApiService::new(apis(state), "SkyPanel PaaS API", env!("CARGO_PKG_VERSION"))
        .description(
            "Customer, admin and platform API of SkyPanel PaaS. Authenticate with \
             `Authorization: Bearer <token>`, using an access token from `POST /api/auth/login` \
             or an `spt_` API token. Every error answers `{\"code\", \"message\", \"field\"}`; \
             money is a decimal string. A request body with a field an operation does not \
             know, or a NUL character anywhere in a body or an address, is refused (422, \
             naming the field) rather than ignored.",
        )
        .contact(ContactObject::new().name("SkyPanel"))
        .license(LicenseObject::new("AGPL-3.0-only"))
        .server("/api")
}

/// The spec as YAML, exactly as `/api/openapi.yaml` serves it.
pub fn spec_yaml(state: &AppState) -> String {
    openapi_service(state).spec_yaml()
}

/// The admin inspector: one page of HTML and plain JavaScript (no build
/// step) that reads `/api/admin/inspector/...` with an admin's login.
fn inspector_page() -> poem::Response {
    poem::Response::builder()
        .content_type("text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header(
            "content-security-policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
        )
        .body(include_str!("inspector.html"))
}

/// The whole HTTP application.
pub fn app(state: AppState) -> impl Endpoint {
    let service = openapi_service(&state);
    let docs = service.swagger_ui();
    metrics::learn_routes(|| service.spec());
    let spec_json = service.spec_endpoint();
    let spec_yaml = service.spec_endpoint_yaml();
    Route::new()
        .nest("/api", service)
        .at("/api/openapi.json", spec_json)
        .at("/api/openapi.yaml", spec_yaml)
        .nest("/api/docs", docs)
        .at("/admin", poem::get(console::page))
        .at("/admin/inspector", make_sync(|_| inspector_page()))
        .at(
            "/api/registry/token",
            poem::get(registry_token::token).data(state.settings().registry.clone()),
        )
        .at(
            "/api/paas/runs/:run/session",
            poem::get(sessions::caller_side),
        )
        .at(
            "/api/internal/paas/runs/:run/session",
            poem::get(sessions::node_side),
        )
        .at(
            "/api/internal/paas/nodes/:id/lease-stream",
            poem::get(lease_stream::upgrade),
        )
        .at(
            skypanel_actors::replicas::CALL_PATH,
            poem::post(replicas::call),
        )
        .at(
            "/api/internal/paas/database-moves/:id/dump",
            poem::put(moves::hand_over).get(moves::fetch),
        )
        .at("/metrics", poem::get(metrics::scrape))
        .at("/", poem::get(console::page))
        .at("/console/:version/:name", poem::get(console::asset))
        .nest("/git", git::routes())
        .around(rate_limit::check)
        .data(state)
        .with(CatchPanic::new().with_handler(middleware::panic_response))
        .around(middleware::around)
}
