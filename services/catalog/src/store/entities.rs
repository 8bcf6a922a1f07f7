//! sea-orm entities of the catalog database.

/// The `products` table.
pub mod product {
    use sea_orm::entity::prelude::*;

    /// One product row.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "products")]
    pub struct Model {
        /// UUIDv7; the list order and page key.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// CreateProduct's idempotency key; unique when set.
        pub request_id: Option<String>,
        /// Name.
        pub name: String,
        /// Description.
        pub description: String,
        /// Category slug.
        pub category: String,
        /// Price in minor units.
        pub price_amount_minor: i64,
        /// ISO 4217 code.
        pub price_currency_code: String,
        /// Listed and orderable.
        pub active: bool,
        /// Epoch ms.
        pub created_at: i64,
        /// Epoch ms.
        pub updated_at: i64,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
