// A sandboxed Lua 5.1 for ai-rate-limiting-advanced's `requestPrompt` cost functions
// (config.request_prompt_count_function). Everything Lua — including its longjmp-based errors —
// stays inside these calls: nothing raises past them, so Swift can call them directly.
#ifndef SILVERBACK_LUA_SANDBOX_H
#define SILVERBACK_LUA_SANDBOX_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// One header or query argument. Pointers are borrowed for the duration of the call only.
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} sb_lua_pair;

/// What `kong.request` shows. Header names arrive lower-cased; repeated names appear repeatedly.
/// Query pairs are already percent-decoded. A NULL pointer with a zero length is an empty string.
typedef struct {
    const char *method;
    size_t method_len;
    const char *path;
    size_t path_len;
    const char *raw_query;
    size_t raw_query_len;
    const sb_lua_pair *headers;
    size_t header_count;
    const sb_lua_pair *query;
    size_t query_count;
    const char *body;
    size_t body_len;
    int has_body;
    /// What the rest of the PDK reads, by name: `host`, `scheme`, `port`, `forwarded_host`,
    /// `forwarded_scheme`, `forwarded_port`, `client_ip`, `forwarded_ip`, `consumer.id`,
    /// `consumer.username`, `consumer.custom_id`, `credential.id`, `route.id`, `route.name`,
    /// `service.id`, `service.name`. An absent name reads as nil.
    const sb_lua_pair *facts;
    size_t fact_count;
} sb_lua_request;

// `sb_lua_result.status` values (macros, so Swift sees them as Int32 like `status`).
#define SB_LUA_OK 0            // `number` holds the function's first return value
#define SB_LUA_BAD_RETURN 1    // `detail` is the Lua type name of what it returned ("string", "nil", ...)
#define SB_LUA_RUNTIME_ERROR 2 // `detail` is the error message
#define SB_LUA_LIMIT 3         // `detail` names the limit: "instruction|time|memory limit exceeded"
#define SB_LUA_SYNTAX_ERROR 4  // `detail` is Lua's compile message

typedef struct {
    int status;
    double number;
    char detail[512];  // NUL-terminated, truncated when longer
} sb_lua_result;

/// Compiles `source` (as `loadstring` would, binary chunks refused) without running it.
/// Returns 0 when it compiles, else non-zero with Lua's message in `detail`
/// (e.g. `[string "return ("]:1: unexpected symbol near '<eof>'`).
int sb_lua_check(const char *source, size_t len, char *detail, size_t detail_len);

/// Runs `source` as a function body in a fresh sandboxed state and reports its first return
/// value. Limits of 0 (or less) are off. `instruction_limit` counts VM instructions (in steps of
/// 1000), function calls, and elements the table library moves; `memory_limit` is in bytes of
/// everything the state allocates.
void sb_lua_run(const char *source, size_t len, const sb_lua_request *request,
                long instruction_limit, long time_limit_ms, size_t memory_limit,
                sb_lua_result *out);

#ifdef __cplusplus
}
#endif

#endif
