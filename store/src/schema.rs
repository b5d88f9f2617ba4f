//! Diesel table definitions, written by hand to match `migrations/` exactly
//! (a test compares them with the migrated database).

diesel::table! {
    users (id) {
        id -> Int8,
        email -> Text,
        password_hash -> Text,
        name -> Nullable<Text>,
        role -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        suspended_at -> Nullable<Timestamptz>,
        suspension_reason -> Nullable<Text>,
    }
}

diesel::table! {
    console_sessions (id) {
        id -> Int8,
        user_id -> Int8,
        token_digest -> Text,
        csrf_token -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> Int8,
        user_id -> Int8,
        name -> Text,
        token_digest -> Text,
        token_hint -> Text,
        expires_at -> Nullable<Timestamptz>,
        last_used_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    wallets (id) {
        id -> Int8,
        user_id -> Int8,
        balance -> Numeric,
        currency -> Text,
        negative_since -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        negative_noticed -> Bool,
    }
}

diesel::table! {
    wallet_transactions (id) {
        id -> Int8,
        wallet_id -> Int8,
        kind -> Text,
        amount -> Numeric,
        balance_after -> Numeric,
        description -> Text,
        reference -> Nullable<Text>,
        created_by -> Nullable<Int8>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    paas_runtimes (id) {
        id -> Int8,
        name -> Text,
        runtime_type -> Text,
        version -> Text,
        base_image -> Text,
        default_build_cmd -> Nullable<Text>,
        default_start_cmd -> Nullable<Text>,
        is_active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    paas_plans (id) {
        id -> Int8,
        name -> Text,
        cpu_limit -> Int4,
        memory_limit -> Int4,
        storage_limit -> Int4,
        monthly_price -> Numeric,
        hourly_rate -> Numeric,
        supported_runtimes -> Array<Int8>,
        is_active -> Bool,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        build_cpu_limit -> Int4,
        build_memory_limit -> Int4,
        build_pids_limit -> Int4,
    }
}

diesel::table! {
    paas_nodes (id) {
        id -> Int8,
        name -> Text,
        region -> Text,
        host_address -> Text,
        registration_token_digest -> Nullable<Text>,
        registration_expires_at -> Nullable<Timestamptz>,
        credential_digest -> Nullable<Text>,
        credential_issued_at -> Nullable<Timestamptz>,
        status -> Text,
        cpu_total -> Int4,
        memory_total -> Int4,
        disk_total -> Int4,
        cpu_used -> Int4,
        memory_used -> Int4,
        disk_used -> Int4,
        container_count -> Int4,
        agent_version -> Nullable<Text>,
        last_heartbeat -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        previous_credential_digest -> Nullable<Text>,
        previous_credential_expires_at -> Nullable<Timestamptz>,
        hostname -> Nullable<Text>,
        image_count -> Nullable<Int4>,
        image_bytes -> Nullable<Int8>,
    }
}

diesel::table! {
    paas_applications (id) {
        id -> Int8,
        user_id -> Int8,
        name -> Text,
        slug -> Text,
        runtime_id -> Nullable<Int8>,
        plan_id -> Int8,
        node_id -> Nullable<Int8>,
        region -> Text,
        git_repo_url -> Nullable<Text>,
        git_branch -> Text,
        git_oauth_token -> Nullable<Bytea>,
        image -> Nullable<Text>,
        port -> Int4,
        health_check_path -> Nullable<Text>,
        auto_deploy -> Bool,
        status -> Text,
        current_build_id -> Nullable<Int8>,
        current_release_id -> Nullable<Int8>,
        instance_count -> Int4,
        system_domain -> Text,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        generation -> Int8,
        applied_generation -> Int8,
        target_status -> Nullable<Text>,
        last_error -> Nullable<Text>,
        webhook_secret -> Nullable<Bytea>,
        suspended_from -> Nullable<Text>,
        formation -> Jsonb,
        processes -> Nullable<Jsonb>,
        release_command -> Nullable<Text>,
    }
}

diesel::table! {
    paas_builds (id) {
        id -> Int8,
        application_id -> Int8,
        build_number -> Int4,
        git_commit_sha -> Nullable<Text>,
        git_commit_message -> Nullable<Text>,
        status -> Text,
        build_log -> Text,
        image_tag -> Nullable<Text>,
        failure_reason -> Nullable<Text>,
        node_id -> Nullable<Int8>,
        attempt -> Int4,
        started_at -> Nullable<Timestamptz>,
        completed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        git_branch -> Nullable<Text>,
        commit_requested -> Nullable<Text>,
        requested_by -> Nullable<Int8>,
        builder -> Nullable<Text>,
        image_size_mb -> Nullable<Int8>,
    }
}

diesel::table! {
    paas_releases (id) {
        id -> Int8,
        application_id -> Int8,
        version -> Int4,
        build_id -> Nullable<Int8>,
        image_tag -> Text,
        config -> Jsonb,
        env_snapshot -> Nullable<Bytea>,
        description -> Text,
        created_by -> Nullable<Int8>,
        created_at -> Timestamptz,
        node_id -> Nullable<Int8>,
        kind -> Text,
        image_id -> Nullable<Text>,
        registry_ref -> Nullable<Text>,
        image_digest -> Nullable<Text>,
        pushed_at -> Nullable<Timestamptz>,
        push_error -> Nullable<Text>,
        image_bytes -> Nullable<Int8>,
        status -> Text,
        failure -> Nullable<Text>,
    }
}

diesel::table! {
    paas_app_requests (id) {
        id -> Int8,
        application_id -> Int8,
        kind -> Text,
        payload -> Jsonb,
        requested_by -> Nullable<Int8>,
        requested_at -> Timestamptz,
    }
}

diesel::table! {
    paas_environment_vars (id) {
        id -> Int8,
        application_id -> Int8,
        key -> Text,
        value -> Bytea,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    paas_domains (id) {
        id -> Int8,
        application_id -> Int8,
        hostname -> Text,
        is_system -> Bool,
        ssl_status -> Text,
        ssl_error -> Nullable<Text>,
        certificate_pem -> Nullable<Text>,
        private_key -> Nullable<Bytea>,
        certificate_expires_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        ssl_attempts -> Int4,
        ssl_due_at -> Nullable<Timestamptz>,
        ssl_request -> Int4,
        certificate_issued_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    paas_database_engines (id) {
        id -> Int8,
        db_type -> Text,
        version -> Text,
        image -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    paas_acme_accounts (id) {
        id -> Int8,
        directory_url -> Text,
        credentials -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    paas_databases (id) {
        id -> Int8,
        user_id -> Int8,
        name -> Text,
        db_type -> Text,
        version -> Text,
        plan_id -> Int8,
        node_id -> Nullable<Int8>,
        region -> Text,
        host -> Nullable<Text>,
        port -> Nullable<Int4>,
        username -> Nullable<Text>,
        password -> Nullable<Bytea>,
        database_name -> Nullable<Text>,
        status -> Text,
        failure_reason -> Nullable<Text>,
        container_id -> Nullable<Text>,
        volume_path -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        image -> Nullable<Text>,
        resume_stopped -> Bool,
    }
}

diesel::table! {
    paas_app_databases (id) {
        id -> Int8,
        application_id -> Int8,
        database_id -> Int8,
        env_var_prefix -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    paas_tasks (id) {
        id -> Int8,
        node_id -> Int8,
        application_id -> Nullable<Int8>,
        database_id -> Nullable<Int8>,
        build_id -> Nullable<Int8>,
        kind -> Text,
        payload -> Jsonb,
        status -> Text,
        attempt -> Int4,
        max_attempts -> Int4,
        lease_id -> Nullable<Uuid>,
        lease_deadline -> Nullable<Timestamptz>,
        result -> Nullable<Jsonb>,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        sealed_secrets -> Nullable<Bytea>,
        generation -> Nullable<Int8>,
        cancel_requested -> Bool,
        lease_request -> Nullable<Uuid>,
    }
}

diesel::table! {
    paas_task_logs (task_id, attempt, seq) {
        task_id -> Int8,
        seq -> Int4,
        lines -> Text,
        created_at -> Timestamptz,
        attempt -> Int4,
    }
}

diesel::table! {
    paas_instances (id) {
        id -> Int8,
        application_id -> Int8,
        node_id -> Int8,
        container_name -> Text,
        container_id -> Text,
        release_version -> Int4,
        instance -> Int4,
        generation -> Int8,
        state -> Text,
        host_port -> Nullable<Int4>,
        restart_count -> Int4,
        crash_looping -> Bool,
        cpu_percent -> Float8,
        memory_used_mb -> Int8,
        observed_at -> Timestamptz,
        process_type -> Text,
        started_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    paas_billing_records (id) {
        id -> Int8,
        user_id -> Int8,
        resource_type -> Text,
        resource_id -> Int8,
        plan_id -> Int8,
        instance_count -> Int4,
        hourly_rate -> Numeric,
        hours_used -> Numeric,
        total_cost -> Numeric,
        billing_period_start -> Timestamptz,
        billing_period_end -> Timestamptz,
        wallet_transaction_id -> Nullable<Int8>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    paas_usage (id) {
        id -> Int8,
        user_id -> Int8,
        resource_type -> Text,
        resource_id -> Int8,
        plan_id -> Int8,
        instances -> Int4,
        started_at -> Timestamptz,
        ended_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    paas_billing_runs (period_start) {
        period_start -> Timestamptz,
        records -> Int4,
        charged -> Numeric,
        finished_at -> Timestamptz,
    }
}

diesel::table! {
    paas_notifications (id) {
        id -> Int8,
        user_id -> Int8,
        kind -> Text,
        message -> Text,
        created_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
        data -> Jsonb,
        dedupe_key -> Nullable<Text>,
    }
}

diesel::table! {
    paas_webhooks (id) {
        id -> Int8,
        user_id -> Int8,
        url -> Text,
        events -> Array<Text>,
        secret -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    paas_webhook_deliveries (id) {
        id -> Int8,
        webhook_id -> Int8,
        notification_id -> Int8,
        event -> Text,
        status -> Text,
        attempts -> Int4,
        response_status -> Nullable<Int4>,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        last_attempt_at -> Nullable<Timestamptz>,
        next_attempt_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    paas_runs (id) {
        id -> Int8,
        application_id -> Int8,
        user_id -> Int8,
        started_by -> Int8,
        release_version -> Int4,
        plan_id -> Int8,
        command -> Text,
        attach -> Bool,
        tty -> Bool,
        status -> Text,
        exit_code -> Nullable<Int4>,
        failure -> Nullable<Text>,
        ttl_secs -> Int4,
        node_id -> Nullable<Int8>,
        task_id -> Nullable<Int8>,
        session_ticket -> Nullable<Text>,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        ended_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        actor_user_id -> Nullable<Int8>,
        actor_node_id -> Nullable<Int8>,
        action -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<Int8>,
        details -> Jsonb,
        ip_address -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    paas_database_backups (id) {
        id -> Int8,
        database_id -> Int8,
        user_id -> Int8,
        origin -> Text,
        status -> Text,
        node_id -> Nullable<Int8>,
        task_id -> Nullable<Int8>,
        size_bytes -> Nullable<Int8>,
        sha256 -> Nullable<Text>,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    paas_database_restores (id) {
        id -> Int8,
        database_id -> Int8,
        user_id -> Int8,
        backup_id -> Nullable<Int8>,
        status -> Text,
        task_id -> Nullable<Int8>,
        error -> Nullable<Text>,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    paas_kept_volumes (id) {
        id -> Int8,
        database_id -> Int8,
        user_id -> Int8,
        node_id -> Int8,
        name -> Text,
        db_type -> Text,
        deleted_at -> Timestamptz,
        purge_after -> Timestamptz,
        purged_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    paas_github_app (id) {
        id -> Int8,
        app_id -> Int8,
        slug -> Text,
        client_id -> Text,
        secrets -> Bytea,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    paas_github_states (digest) {
        digest -> Text,
        user_id -> Int8,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    paas_github_installations (id) {
        id -> Int8,
        user_id -> Int8,
        installation_id -> Int8,
        account_login -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    paas_app_github (application_id) {
        application_id -> Int8,
        installation_id -> Int8,
        repository -> Text,
        disconnected_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    paas_github_deliveries (delivery_id) {
        delivery_id -> Text,
        event -> Text,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    paas_database_health (database_id) {
        database_id -> Int8,
        size_bytes -> Nullable<Int8>,
        connections -> Nullable<Int4>,
        measured_at -> Timestamptz,
    }
}

diesel::table! {
    paas_database_moves (id) {
        id -> Int8,
        database_id -> Int8,
        from_node_id -> Int8,
        to_node_id -> Int8,
        from_plan_id -> Int8,
        to_plan_id -> Int8,
        status -> Text,
        export_task_id -> Nullable<Int8>,
        import_task_id -> Nullable<Int8>,
        size_bytes -> Nullable<Int8>,
        sha256 -> Nullable<Text>,
        estimated_seconds -> Int4,
        error -> Nullable<Text>,
        started_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    paas_replicas (id) {
        id -> Uuid,
        hostname -> Text,
        started_at -> Timestamptz,
        seen_at -> Timestamptz,
        address -> Nullable<Text>,
    }
}

diesel::table! {
    paas_shard_leases (shard) {
        shard -> Int4,
        owner -> Nullable<Uuid>,
        epoch -> Int8,
        expires_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(console_sessions -> users (user_id));
diesel::joinable!(wallets -> users (user_id));
diesel::joinable!(wallet_transactions -> wallets (wallet_id));
diesel::joinable!(paas_applications -> users (user_id));
diesel::joinable!(paas_applications -> paas_plans (plan_id));
diesel::joinable!(paas_applications -> paas_runtimes (runtime_id));
diesel::joinable!(paas_applications -> paas_nodes (node_id));
diesel::joinable!(paas_builds -> paas_applications (application_id));
diesel::joinable!(paas_releases -> paas_applications (application_id));
diesel::joinable!(paas_app_requests -> paas_applications (application_id));
diesel::joinable!(paas_environment_vars -> paas_applications (application_id));
diesel::joinable!(paas_domains -> paas_applications (application_id));
diesel::joinable!(paas_databases -> users (user_id));
diesel::joinable!(paas_databases -> paas_plans (plan_id));
diesel::joinable!(paas_app_databases -> paas_applications (application_id));
diesel::joinable!(paas_app_databases -> paas_databases (database_id));
diesel::joinable!(paas_tasks -> paas_nodes (node_id));
diesel::joinable!(paas_billing_records -> users (user_id));
diesel::joinable!(paas_task_logs -> paas_tasks (task_id));
diesel::joinable!(paas_instances -> paas_applications (application_id));
diesel::joinable!(paas_instances -> paas_nodes (node_id));
diesel::joinable!(paas_usage -> users (user_id));
diesel::joinable!(paas_usage -> paas_plans (plan_id));
diesel::joinable!(paas_notifications -> users (user_id));
diesel::joinable!(paas_webhook_deliveries -> paas_webhooks (webhook_id));
diesel::joinable!(paas_webhook_deliveries -> paas_notifications (notification_id));
diesel::joinable!(paas_database_backups -> paas_databases (database_id));
diesel::joinable!(paas_database_restores -> paas_databases (database_id));
diesel::joinable!(paas_runs -> paas_applications (application_id));
diesel::joinable!(paas_app_github -> paas_applications (application_id));
diesel::joinable!(paas_database_health -> paas_databases (database_id));
diesel::joinable!(paas_database_moves -> paas_databases (database_id));
diesel::joinable!(paas_shard_leases -> paas_replicas (owner));
diesel::joinable!(paas_github_states -> users (user_id));
diesel::joinable!(paas_github_installations -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    api_tokens,
    console_sessions,
    wallets,
    wallet_transactions,
    paas_runtimes,
    paas_plans,
    paas_nodes,
    paas_applications,
    paas_builds,
    paas_releases,
    paas_app_requests,
    paas_environment_vars,
    paas_domains,
    paas_databases,
    paas_database_backups,
    paas_database_restores,
    paas_kept_volumes,
    paas_app_databases,
    paas_tasks,
    paas_task_logs,
    paas_instances,
    paas_billing_records,
    paas_usage,
    paas_billing_runs,
    paas_notifications,
    paas_webhooks,
    paas_webhook_deliveries,
    paas_acme_accounts,
    paas_database_engines,
    paas_runs,
    paas_github_app,
    paas_github_states,
    paas_github_installations,
    paas_app_github,
    paas_github_deliveries,
    paas_database_health,
    paas_database_moves,
    paas_replicas,
    paas_shard_leases,
    audit_log,
);
