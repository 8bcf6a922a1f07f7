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

    /// A user's addresses, loaded with the user in one query.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        /// `addresses.user_id`.
        #[sea_orm(has_many = "super::address::Entity")]
        Address,
    }

    impl Related<super::address::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Address.def()
        }
    }

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

    /// The owner.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        /// `addresses.user_id` → `users.id`.
        #[sea_orm(
            belongs_to = "super::user::Entity",
            from = "Column::UserId",
            to = "super::user::Column::Id"
        )]
        User,
    }

    impl Related<super::user::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::User.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// The `refresh_tokens` table.
pub mod refresh_token {
    use sea_orm::entity::prelude::*;

    /// One refresh token row.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "refresh_tokens")]
    pub struct Model {
        /// Hex SHA-256 of the token.
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        /// The sign-in it belongs to.
        pub family_id: String,
        /// Owner.
        pub user_id: String,
        /// Epoch ms.
        pub created_at: i64,
        /// Epoch ms.
        pub expires_at: i64,
        /// Epoch ms it was consumed by a refresh.
        pub used_at: Option<i64>,
        /// Epoch ms it was revoked.
        pub revoked_at: Option<i64>,
    }

    /// No relations: rows go with their user explicitly.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
