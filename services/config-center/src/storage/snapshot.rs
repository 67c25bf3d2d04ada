//! The snapshot: the whole routing config at one version, read in one
//! consistent transaction and shaped as the JSON contract readers expect.

use super::{api_keys, instances, models, namespaces, Backend, Result, Store};
use aigw_types::{ApiKeyConfig, ConfigSnapshot, InstanceConfig, ModelConfig, NamespaceConfig};

impl Store {
    /// Everything the gateway and token-service need, at one version, read
    /// in one consistent transaction.
    pub async fn snapshot(&self, generated_at_ms: i64) -> Result<ConfigSnapshot> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            // One snapshot for all the reads below (the default READ
            // COMMITTED would let a change land between two SELECTs).
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let version: i64 = sqlx::query_scalar("SELECT version FROM config_state WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let namespaces = namespaces::all(&mut tx).await?;
        let keys = api_keys::all(&mut tx).await?;
        let models = models::all(&mut tx).await?;
        let instances = instances::all(&mut tx).await?;
        tx.commit().await?;

        let mut snap = ConfigSnapshot {
            version: version as u64,
            generated_at_ms,
            ..Default::default()
        };
        for n in namespaces {
            snap.namespaces.push(NamespaceConfig {
                code: n.code,
                name: n.name,
                enabled: n.enabled,
                limits: n.limits,
                monthly_budget_usd: n.monthly_budget_usd,
            });
        }
        for k in keys {
            snap.api_keys.push(ApiKeyConfig {
                id: k.id,
                namespace_code: k.namespace_code,
                key_hash: k.key_hash,
                prefix: k.prefix,
                revoked: k.revoked_at_ms.is_some(),
                expires_at_ms: k.expires_at_ms,
                allowed_models: k.allowed_models,
            });
        }
        for m in models {
            snap.models.push(ModelConfig {
                name: m.name,
                encoding: m.encoding,
                input_price_per_1m: m.input_price_per_1m,
                output_price_per_1m: m.output_price_per_1m,
                cached_input_price_per_1m: m.cached_input_price_per_1m,
                cache_write_price_per_1m: m.cache_write_price_per_1m,
                context_window: m.context_window,
                enabled: m.enabled,
            });
        }
        for i in instances {
            snap.instances.push(InstanceConfig {
                id: i.id,
                namespace_code: i.namespace_code,
                model: i.model,
                provider: i.provider,
                base_url: i.base_url,
                upstream_model: i.upstream_model,
                api_key: i.api_key,
                azure_deployment: i.azure_deployment,
                api_version: i.api_version,
                weight: i.weight,
                timeout_ms: i.timeout_ms,
                enabled: i.enabled,
                health_check: i.health_check,
                retry_unknown_outcome: i.retry_unknown_outcome,
                openai_organization: i.openai_organization,
                openai_project: i.openai_project,
            });
        }
        Ok(snap)
    }
}
