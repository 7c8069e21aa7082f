//! One behaviour suite that every vendor runs. Adding a vendor means: its client, its simulator,
//! a [`Row`](behaviour::Row) in `tests/support/behaviour/<vendor>.rs`, and one line below.
//!
//! Each `behaviour_suite!(vendor, Row)` line expands to one test per behaviour, named
//! `vendor::behaviour` (`cargo test --test behaviour rossum::` runs a vendor's column). What is
//! checked at the vendor is read through the simulator's `SimulatorHandle` and the row's own
//! view of the vendor's objects, never through the engine's plan or diff code.
//!
//! | behaviour | what must hold | rossum | openlattice | dataloop | renderedai |
//! |---|---|---|---|---|---|
//! | `create_or_adopt` | created once (or adopted where the vendor cannot create, and then asking to create is `Unsupported`); a second reconcile and a fresh process find the same org | runs | runs | runs (adopts) | runs (adopts) |
//! | `copy_equals_template` | per compared kind, the new org's objects equal the template's as multisets of views (ids dropped, references by natural key within the object's org) | runs | runs | runs | runs |
//! | `references_stay_inside` | every reference in the copies points inside the new org | runs | runs | runs | runs |
//! | `reapply_writes_nothing` | a second reconcile, and one from a fresh process, leave `total_writes` unchanged | runs | runs | runs | runs |
//! | `drift_repaired` | hand edits of copies at the vendor are put back | runs | runs | runs | runs |
//! | `template_change_propagated` | hand edits of the template reach the copies | runs | runs | runs | runs |
//! | `lost_responses_never_duplicate` | `drop=0.3`: reconciled until Ready, one org and copies equal to the template (no duplicates); then a reconcile writes nothing | runs | runs | runs | runs |
//! | `mixed_faults_converge` | ~20 % faults of all five kinds: same result, no duplicates | runs | runs | runs | runs |
//! | `kill_mid_copy` | the reconcile future dropped after the org's create and halfway through the copy; run again from the persisted state: one org, complete, no duplicates | runs | runs | runs | runs |
//! | `suspend_writes_nothing` | suspended: no org created; drift in settings and copies reported (`DriftDetected`), not repaired, no writes | runs | runs | runs | runs |
//! | `bad_credentials_name_the_secret` | `CredentialsInvalid` naming the Secret, never the credential, for orgs and memberships; no writes | runs | runs | runs | runs |
//! | `member_added` | a person gets the roles and scopes at the vendor (a vendor that invites: `Invited` first, no access, asking again writes nothing; accepted by hand, then the access); again writes nothing | runs | runs | runs (invited, then accepted) | runs (invited, then accepted) |
//! | `member_role_changed` | their roles change, scopes stay | runs | runs | runs | runs |
//! | `member_removed` | no access left at the vendor; removing again writes nothing | runs | runs | runs | runs |
//!
//! "runs": the behaviour is checked. A behaviour that cannot apply to a vendor is declared by
//! its row (no compared kinds, no memberships, no org creation); its test then asserts that the
//! vendor says `Unsupported` — it never passes by skipping.
//!
//! OpenLattice copies roles (title, description, grants with mappings as sets; the ADMIN role
//! every organization makes for itself is left out on both sides). Roles refer to no other
//! copy, so the references checked are each role's own: `organizationId`, `aclKey` and the
//! `<orgId>|` of its principal name must name the new org, and `aclKey[1]` the copy itself.
//! Its members have the role `member` plus role titles of the org, and no scopes.
//!
//! Dataloop creates no organizations: its row makes one empty organization per behaviour at
//! the simulator by hand (as Dataloop would for a customer) and the behaviours adopt them by
//! name, with the plan `premium`; `create_or_adopt` checks the adoption and that asking for an
//! organization that is not there is `Unsupported`. It copies groups (by name), integrations
//! (their credentials from the Secrets the row gives, [`Row::template_secrets`](behaviour::Row)),
//! projects with their group roles, drivers, ontologies (with their attribute definitions) and
//! recipes; references (`projectId`, `integrationId`, `projectIds`, `ontologyIds`, group roles)
//! are compared by name and checked to stay in the org. Members are invited: the membership
//! behaviours see `Invited` (no access yet, asking again sends nothing), accept through the
//! simulator's hand hook ([`Row::accept_invitation`](behaviour::Row)), and then check the org
//! role and the project roles (scopes, `"<project>:<role>"`, granted only after acceptance).
//!
//! Rendered.ai creates no organizations either: its row makes one per behaviour as sign-up
//! does (the admin as `admin`, a default workspace, which is the vendor's own and left out),
//! adopted by name with organization rules and limits as settings. It copies volumes,
//! workspaces (with their rules, which the simulator keeps on the workspace) and graphs;
//! a workspace's volumes, a graph's workspace and the `"<volumeId>:/path"` files in its JSON
//! are compared by name and must stay in the org, while the channels Rendered.ai shares with
//! every org are compared by id (a copy uses the very same ones) and are not "inside" checks.
//! Graphs cannot be edited through the API, so the hand edits touch volumes and workspaces.
//! Members are invited (an e-mail without an account), accepted by hand, one role
//! `admin|member`; scopes are workspace names (3.3.4 guest places, given only after
//! acceptance).

mod support;

#[macro_use]
#[path = "support/behaviour/mod.rs"]
mod behaviour;

use behaviour::dataloop::DataloopRow;
use behaviour::openlattice::OpenLatticeRow;
use behaviour::renderedai::RenderedAiRow;
use behaviour::rossum::RossumRow;

behaviour_suite!(rossum, RossumRow);
behaviour_suite!(openlattice, OpenLatticeRow);
behaviour_suite!(dataloop, DataloopRow);
behaviour_suite!(renderedai, RenderedAiRow);
