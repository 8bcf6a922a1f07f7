//! The GraphQL schema is generated from the contracts: this snapshot fails when they change
//! and it does not. Refresh it with `polyshop admin graphql-schema >
//! gateway/tests/graphql_schema.snap` and review the diff like any API change.

const SNAPSHOT: &str = include_str!("graphql_schema.snap");

#[test]
fn the_graphql_schema_matches_its_checked_in_snapshot() {
    let sdl = polyshop_gateway::graphql::sdl().expect("the schema builds");
    if sdl != SNAPSHOT {
        let first = sdl
            .lines()
            .zip(SNAPSHOT.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| sdl.lines().count().min(SNAPSHOT.lines().count()));
        panic!(
            "the schema differs from gateway/tests/graphql_schema.snap from line {}: \
             run `polyshop admin graphql-schema > gateway/tests/graphql_schema.snap`",
            first + 1
        );
    }
}

#[test]
fn internal_methods_are_not_in_the_schema_and_relations_are() {
    let sdl = polyshop_gateway::graphql::sdl().expect("the schema builds");
    for internal in ["reserveStock(", "confirmReservation(", "charge(", "refund("] {
        assert!(!sdl.contains(internal), "{internal} is INTERNAL");
    }
    for relation in [
        "product: CatalogV2Product",
        "user: User",
        "orders(pageSize: Int",
    ] {
        assert!(sdl.contains(relation), "the relation {relation}");
    }
    assert!(
        sdl.contains("amountMinor: String"),
        "money's int64 is a string"
    );
}
