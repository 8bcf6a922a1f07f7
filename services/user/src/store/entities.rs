//! sea-orm entities of the user database.

/// The `users` table.
pub mod user {
    use sea_orm::entity::prelude::*;

    /// One account row.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        /// UUIDv7.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// As registered.
        pub username: String,
        /// Lower-cased, unique.
        pub username_key: String,
        /// As registered.
        pub email: String,
        /// Lower-cased, unique.
        pub email_key: String,
        /// Shown name.
        pub display_name: String,
        /// argon2id PHC string.
        pub password_hash: String,
        /// `active` | `inactive` | `suspended`.
        pub status: String,
        /// Comma-separated role names.
        pub roles: String,
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

/// The `addresses` table.
pub mod address {
    use sea_orm::entity::prelude::*;

    /// One address row.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "addresses")]
    pub struct Model {
        /// UUIDv7.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Owner.
        pub user_id: String,
        /// Recipient.
        pub recipient: String,
        /// Street.
        pub line1: String,
        /// Second line.
        pub line2: String,
        /// City.
        pub city: String,
        /// Region.
        pub region: String,
        /// Postal code.
        pub postal_code: String,
        /// Country.
        pub country_code: String,
        /// Epoch ms.
        pub created_at: i64,
    }

    /// No relations are navigated through sea-orm.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
