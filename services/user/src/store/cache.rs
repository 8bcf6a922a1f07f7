//! A read-through cache in front of a [`UserRepository`]: accounts read by id (GetUser, which
//! the order saga calls to validate every order's customer) are served from memory for
//! [`TTL`]. This process's writes replace or drop the cached account at once, so only a write
//! made by another user instance can be up to the TTL late. Unlike the catalog's, this cache
//! never answers from a stale entry when the store fails: an account's status decides who may
//! order, and the order service has its own replica for when the user service is away.
//! Logins, lookups by name and lists always go to the store.

use std::time::Duration;

use polyshop_platform::cache::TtlMap;

use crate::{
    app::{NewUser, UserRepository},
    domain::{Address, User, UserError, UserStatus},
};

/// How long a cached account is served without asking the store.
pub const TTL: Duration = Duration::from_secs(1);
/// Accounts kept at most; past this, expired ones are dropped, then all.
const MAX_ENTRIES: usize = 10_000;

/// See the module docs.
#[derive(Debug)]
pub struct CachedUsers<R> {
    inner: R,
    entries: TtlMap<User>,
}

impl<R: UserRepository> CachedUsers<R> {
    /// Caches `inner`'s reads by id for `ttl`.
    pub fn new(inner: R, ttl: Duration) -> Self {
        Self {
            inner,
            entries: TtlMap::new(ttl, MAX_ENTRIES),
        }
    }

    /// Sets how long entries stay fresh (`None`: as built), for the runtime `cache_ttl_ms`.
    pub fn set_ttl(&self, ttl: Option<Duration>) {
        self.entries.set_ttl(ttl);
    }

    /// The repository behind the cache.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    fn remember(&self, user: &User) {
        self.entries.remember([user], |u| &u.id);
    }

    /// Keeps what a write returned, or forgets the account when the outcome is unknown.
    fn written<T>(&self, id: &str, result: &Result<T, UserError>, user: impl Fn(&T) -> &User) {
        match result {
            Ok(value) => self.remember(user(value)),
            Err(_) => self.entries.forget(id),
        }
    }
}

impl<R: UserRepository> UserRepository for CachedUsers<R> {
    async fn insert(&self, new: NewUser) -> Result<User, UserError> {
        let user = self.inner.insert(new).await?;
        self.remember(&user);
        Ok(user)
    }

    async fn find(&self, id: &str) -> Result<Option<User>, UserError> {
        if let Some((user, true)) = self.entries.get(id) {
            return Ok(Some(user));
        }
        let found = self.inner.find(id).await?;
        match &found {
            Some(user) => self.remember(user),
            None => self.entries.forget(id),
        }
        Ok(found)
    }

    async fn find_for_login(&self, login: &str) -> Result<Option<(User, String)>, UserError> {
        self.inner.find_for_login(login).await
    }

    async fn find_by_username(&self, username: &str) -> Result<Option<User>, UserError> {
        self.inner.find_by_username(username).await
    }

    async fn update_profile(
        &self,
        id: &str,
        display_name: Option<String>,
        email: Option<String>,
    ) -> Result<User, UserError> {
        let result = self.inner.update_profile(id, display_name, email).await;
        self.written(id, &result, |user| user);
        result
    }

    async fn set_status(
        &self,
        id: &str,
        status: UserStatus,
    ) -> Result<(UserStatus, User), UserError> {
        let result = self.inner.set_status(id, status).await;
        self.written(id, &result, |(_, user)| user);
        result
    }

    async fn add_address(&self, user_id: &str, address: Address) -> Result<Address, UserError> {
        let result = self.inner.add_address(user_id, address).await;
        // The answer is the address alone: the next read fetches the account with it.
        self.entries.forget(user_id);
        result
    }

    async fn list(&self, after: Option<String>, limit: u64) -> Result<Vec<User>, UserError> {
        self.inner.list(after, limit).await
    }

    async fn delete(&self, id: &str) -> Result<bool, UserError> {
        let result = self.inner.delete(id).await;
        self.entries.forget(id);
        result
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::HashMap,
        sync::{
            Mutex,
            atomic::{AtomicUsize, Ordering},
        },
    };

    use super::*;

    /// Accounts in memory, counting reads by id.
    #[derive(Debug, Default)]
    struct Counting {
        users: Mutex<HashMap<String, User>>,
        reads: AtomicUsize,
    }

    impl Counting {
        fn with<T>(&self, id: &str, f: impl FnOnce(&mut User) -> T) -> Result<T, UserError> {
            let mut users = self.users.lock().expect("lock");
            users.get_mut(id).map(f).ok_or(UserError::NotFound)
        }
    }

    impl UserRepository for Counting {
        async fn insert(&self, new: NewUser) -> Result<User, UserError> {
            let user = User {
                id: new.id,
                username: new.username,
                email: new.email,
                display_name: new.display_name,
                status: UserStatus::Active,
                roles: new.roles,
                addresses: vec![],
                created_at: 1,
                updated_at: 1,
            };
            let mut users = self.users.lock().expect("lock");
            users.insert(user.id.clone(), user.clone());
            Ok(user)
        }
        async fn find(&self, id: &str) -> Result<Option<User>, UserError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(self.users.lock().expect("lock").get(id).cloned())
        }
        async fn find_for_login(&self, _: &str) -> Result<Option<(User, String)>, UserError> {
            Ok(None)
        }
        async fn find_by_username(&self, _: &str) -> Result<Option<User>, UserError> {
            Ok(None)
        }
        async fn update_profile(
            &self,
            id: &str,
            display_name: Option<String>,
            _: Option<String>,
        ) -> Result<User, UserError> {
            self.with(id, |u| {
                if let Some(name) = display_name {
                    u.display_name = name;
                }
                u.clone()
            })
        }
        async fn set_status(
            &self,
            id: &str,
            status: UserStatus,
        ) -> Result<(UserStatus, User), UserError> {
            self.with(id, |u| {
                (std::mem::replace(&mut u.status, status), u.clone())
            })
        }
        async fn add_address(&self, id: &str, address: Address) -> Result<Address, UserError> {
            self.with(id, |u| {
                u.addresses.push(address.clone());
                address
            })
        }
        async fn list(&self, _: Option<String>, _: u64) -> Result<Vec<User>, UserError> {
            Ok(vec![])
        }
        async fn delete(&self, id: &str) -> Result<bool, UserError> {
            Ok(self.users.lock().expect("lock").remove(id).is_some())
        }
    }

    fn ada() -> NewUser {
        NewUser {
            id: "u1".into(),
            username: "ada".into(),
            email: "ada@example.com".into(),
            display_name: "Ada".into(),
            password_hash: "x".into(),
            roles: vec![],
        }
    }

    #[tokio::test]
    async fn reads_come_from_memory_and_this_processs_writes_show_at_once() {
        let cache = CachedUsers::new(Counting::default(), Duration::from_secs(60));
        cache.insert(ada()).await.expect("insert");
        assert!(cache.find("u1").await.expect("find").is_some());
        assert_eq!(cache.inner.reads.load(Ordering::SeqCst), 0, "from memory");

        cache
            .set_status("u1", UserStatus::Suspended)
            .await
            .expect("suspend");
        let user = cache.find("u1").await.expect("find").expect("some");
        assert_eq!(user.status, UserStatus::Suspended, "the write replaced it");

        cache
            .add_address(
                "u1",
                Address {
                    id: "a1".into(),
                    recipient: "Ada".into(),
                    line1: "1 Main St".into(),
                    line2: String::new(),
                    city: "London".into(),
                    region: String::new(),
                    postal_code: "N1".into(),
                    country_code: "GB".into(),
                },
            )
            .await
            .expect("address");
        let user = cache.find("u1").await.expect("find").expect("some");
        assert_eq!(user.addresses.len(), 1, "read again after the address");
        assert_eq!(cache.inner.reads.load(Ordering::SeqCst), 1);

        assert!(cache.delete("u1").await.expect("delete"));
        assert_eq!(cache.find("u1").await.expect("find"), None);
    }

    #[tokio::test]
    async fn an_expired_account_is_read_again() {
        let cache = CachedUsers::new(Counting::default(), Duration::from_millis(20));
        cache.insert(ada()).await.expect("insert");
        tokio::time::sleep(Duration::from_millis(30)).await;
        cache.find("u1").await.expect("find");
        cache.find("u1").await.expect("find");
        assert_eq!(cache.inner.reads.load(Ordering::SeqCst), 1);
    }
}
