// The requestPrompt sandbox (see LuaSandbox.h). Every Lua call that can raise runs under
// lua_cpcall/lua_pcall, so no longjmp ever leaves this file.
#if !defined(__APPLE__) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L  // clock_gettime under -std=c11
#endif

#include "include/LuaSandbox.h"  // (relative, so a bare gcc needs no -I)

#include <lua5.1/lauxlib.h>
#include <lua5.1/lua.h>
#include <lua5.1/lualib.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOOK_STEP 1000               // VM instructions between count hooks
#define JSON_MAX_DEPTH 200           // nesting beyond this is "invalid json body", not a C stack overflow
#define CHECK_MEMORY_LIMIT (64u << 20)
#define CHUNKNAME_PREFIX 80          // luaO_chunkid never looks further than this into the name

enum { TRIP_NONE, TRIP_INSTRUCTIONS, TRIP_TIME, TRIP_MEMORY };

// One state's limits and inputs; the allocator's userdata, so any C function finds it with
// lua_getallocf.
typedef struct {
    size_t used, memory_limit;
    long instructions, instruction_limit;
    struct timespec deadline;
    int has_deadline;
    unsigned calls;
    int tripped;  // the first limit hit; sticky, so user pcalls cannot swallow it
    const sb_lua_request *request;
    const char *source;
    size_t source_len;
    sb_lua_result *out;
} sb_ctx;

static sb_ctx *ctx_of(lua_State *L) {
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

static void copy_detail(char *dst, size_t cap, const char *src, size_t n) {
    if (cap == 0) return;
    if (n >= cap) n = cap - 1;
    if (src == NULL) n = 0;
    else if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

static void push_bytes(lua_State *L, const char *p, size_t n) {
    lua_pushlstring(L, p ? p : "", p ? n : 0);
}

// MARK: Limits

static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    sb_ctx *c = ud;
    if (nsize == 0) {
        free(ptr);
        c->used -= osize;
        return NULL;
    }
    if (nsize > osize) {
        size_t grow = nsize - osize;
        // Once any limit tripped, refuse growth too: the script is being wound down.
        if (c->tripped || (c->memory_limit && grow > c->memory_limit - c->used)) {
            if (!c->tripped) c->tripped = TRIP_MEMORY;
            return NULL;
        }
    }
    void *p = realloc(ptr, nsize);
    if (p) c->used = c->used - osize + nsize;
    return p;
}

static const char *trip_message(int tripped) {
    switch (tripped) {
    case TRIP_INSTRUCTIONS: return "instruction limit exceeded";
    case TRIP_TIME: return "time limit exceeded";
    default: return "memory limit exceeded";
    }
}

static int past_deadline(const sb_ctx *c) {
    if (!c->has_deadline) return 0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > c->deadline.tv_sec ||
           (now.tv_sec == c->deadline.tv_sec && now.tv_nsec >= c->deadline.tv_nsec);
}

static void sb_hook(lua_State *L, lua_Debug *ar);

// Adds `units` of work; raises once a limit is (or was) exceeded.
static void charge(lua_State *L, double units, int check_clock) {
    sb_ctx *c = ctx_of(L);
    if (!c->tripped) {
        if (units >= (double)(LONG_MAX - c->instructions)) c->instructions = LONG_MAX;
        else if (units > 0) c->instructions += (long)units;
        if (c->instruction_limit > 0 && c->instructions > c->instruction_limit) c->tripped = TRIP_INSTRUCTIONS;
        else if (check_clock && past_deadline(c)) c->tripped = TRIP_TIME;
    }
    if (c->tripped) {
        // From now on every instruction and call fails, so a script looping around pcall
        // still unwinds: the first instruction outside a pcall raises to our own pcall.
        lua_sethook(L, sb_hook, LUA_MASKCALL | LUA_MASKCOUNT, 1);
        luaL_error(L, "%s", trip_message(c->tripped));
    }
}

// Count events measure the VM; call events also catch C loops that call functions
// (table.sort/foreachi with a C callback, gsub with a C replacement) where no instruction runs.
static void sb_hook(lua_State *L, lua_Debug *ar) {
    if (ar->event == LUA_HOOKCOUNT) {
        charge(L, HOOK_STEP, 1);
    } else {
        sb_ctx *c = ctx_of(L);
        charge(L, 1, (++c->calls & 255) == 0);
    }
}

// Calls the original library function (upvalue 1) with this call's arguments.
static int delegate(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

// 5.1's table.insert/remove shift every element between the position and `#t` in C, and `#t`
// of a sparse table can be 2^29 for 30 entries: charge the moves before doing them.
// Arithmetic mirrors ltablib.c (int positions, luaL_getn).
static int guarded_insert(lua_State *L) {
    if (lua_gettop(L) == 3 && lua_istable(L, 1) && lua_isnumber(L, 2)) {
        long long e = (long long)(int)lua_objlen(L, 1) + 1;
        long long pos = (int)lua_tointeger(L, 2);
        if (e > pos) charge(L, (double)(e - pos), 1);
    }
    return delegate(L);
}

static int guarded_remove(lua_State *L) {
    if (lua_istable(L, 1)) {
        long long e = (int)lua_objlen(L, 1);
        long long pos = lua_isnumber(L, 2) ? (int)lua_tointeger(L, 2) : e;
        if (pos >= 1 && pos < e) charge(L, (double)(e - pos), 1);
    }
    return delegate(L);
}

static int guarded_sort(lua_State *L) {
    if (lua_istable(L, 1)) charge(L, (double)(int)lua_objlen(L, 1), 1);
    return delegate(L);
}

// string.rep("", 2^31) loops in C without allocating; a repetition larger than the memory
// limit would fail anyway, so fail it before copying.
static int guarded_rep(lua_State *L) {
    size_t l;
    luaL_checklstring(L, 1, &l);
    lua_Number n = luaL_checknumber(L, 2);
    if (l == 0 || n < 1) {
        lua_pushliteral(L, "");
        return 1;
    }
    sb_ctx *c = ctx_of(L);
    if (c->memory_limit && n > (lua_Number)(c->memory_limit / l)) {
        if (!c->tripped) c->tripped = TRIP_MEMORY;
        return luaL_error(L, "%s", trip_message(c->tripped));
    }
    return delegate(L);
}

// 5.1's matcher recurses once per `?`, `*`, `+`, `-`, `(` or `)` item, with no depth cap: a long
// built pattern overflows the C stack (a crash, not an error). Refuse what Lua 5.2 would
// ("pattern too complex", 200 levels), counting those characters even where they are literal.
#define MAX_PATTERN_ITEMS 200
static int guarded_pattern(lua_State *L) {
    int plain_find = lua_toboolean(L, lua_upvalueindex(2)) && lua_toboolean(L, 4);
    if (lua_type(L, 2) == LUA_TSTRING && !plain_find) {
        size_t n, items = 0;
        const char *p = lua_tolstring(L, 2, &n);
        for (size_t i = 0; i < n; i++) items += strchr("?*+-()", p[i]) != NULL && p[i] != '\0';
        if (items > MAX_PATTERN_ITEMS) return luaL_error(L, "pattern too complex");
        // The matcher runs in C where no hook fires: charge at least one step per subject byte
        // and item, and look at the clock before every match.
        size_t subject = 0;
        if (lua_type(L, 1) == LUA_TSTRING) lua_tolstring(L, 1, &subject);
        charge(L, (double)subject * (double)(items + 1) / 16.0, 1);
    }
    return delegate(L);
}

// Replaces lib[name] (lib at the top of the stack) by `guard` wrapping the original.
static void wrap(lua_State *L, const char *name, lua_CFunction guard) {
    lua_getfield(L, -1, name);
    lua_pushcclosure(L, guard, 1);
    lua_setfield(L, -2, name);
}

static void wrap_pattern(lua_State *L, const char *name, int is_find) {
    lua_getfield(L, -1, name);
    lua_pushboolean(L, is_find);
    lua_pushcclosure(L, guarded_pattern, 2);
    lua_setfield(L, -2, name);
}

// MARK: JSON (kong.request.get_body)

typedef struct {
    const char *p, *end;
    int depth;
} json_in;

static int json_value(lua_State *L, json_in *j);

static void json_ws(json_in *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int json_literal(json_in *j, const char *text, size_t n) {
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, text, n) != 0) return 0;
    j->p += n;
    return 1;
}

static int json_hex4(json_in *j, unsigned *out) {
    if (j->end - j->p < 4) return 0;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = j->p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9') v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f') v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F') v |= (unsigned)(ch - 'A' + 10);
        else return 0;
    }
    j->p += 4;
    *out = v;
    return 1;
}

static void add_utf8(luaL_Buffer *b, unsigned cp) {
    if (cp < 0x80) {
        luaL_addchar(b, (char)cp);
    } else if (cp < 0x800) {
        luaL_addchar(b, (char)(0xC0 | (cp >> 6)));
        luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        luaL_addchar(b, (char)(0xE0 | (cp >> 12)));
        luaL_addchar(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
    } else {
        luaL_addchar(b, (char)(0xF0 | (cp >> 18)));
        luaL_addchar(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
        luaL_addchar(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
    }
}

// j->p is at the opening quote. Raw bytes (control characters included) pass through, as cjson.
static int json_string(lua_State *L, json_in *j) {
    const char *start = ++j->p, *q = start;
    while (q < j->end && *q != '"' && *q != '\\') q++;
    if (q == j->end) return 0;
    if (*q == '"') {  // no escapes: one copy
        lua_pushlstring(L, start, (size_t)(q - start));
        j->p = q + 1;
        return 1;
    }
    luaL_checkstack(L, LUA_MINSTACK, "json string");  // luaL_Buffer assumes free slots
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, start, (size_t)(q - start));
    j->p = q;
    while (j->p < j->end) {
        char ch = *j->p++;
        if (ch == '"') {
            luaL_pushresult(&b);
            return 1;
        }
        if (ch != '\\') {
            luaL_addchar(&b, ch);
            continue;
        }
        if (j->p == j->end) return 0;
        switch (*j->p++) {
        case '"': luaL_addchar(&b, '"'); break;
        case '\\': luaL_addchar(&b, '\\'); break;
        case '/': luaL_addchar(&b, '/'); break;
        case 'b': luaL_addchar(&b, '\b'); break;
        case 'f': luaL_addchar(&b, '\f'); break;
        case 'n': luaL_addchar(&b, '\n'); break;
        case 'r': luaL_addchar(&b, '\r'); break;
        case 't': luaL_addchar(&b, '\t'); break;
        case 'u': {
            unsigned cp, low;
            if (!json_hex4(j, &cp)) return 0;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return 0;  // lone low surrogate
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (!json_literal(j, "\\u", 2) || !json_hex4(j, &low) || low < 0xDC00 || low > 0xDFFF) return 0;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            add_utf8(&b, cp);
            break;
        }
        default: return 0;
        }
    }
    return 0;
}

static int is_digit(const json_in *j, const char *p) { return p < j->end && *p >= '0' && *p <= '9'; }

static int json_number(lua_State *L, json_in *j) {
    const char *s = j->p, *p = s;
    if (p < j->end && *p == '-') p++;
    if (!is_digit(j, p)) return 0;
    if (*p == '0') p++;
    else while (is_digit(j, p)) p++;
    if (p < j->end && *p == '.') {
        if (!is_digit(j, ++p)) return 0;
        while (is_digit(j, p)) p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < j->end && (*p == '+' || *p == '-')) p++;
        if (!is_digit(j, p)) return 0;
        while (is_digit(j, p)) p++;
    }
    // The grammar is checked above, so strtod (which wants a terminated string) sees only it.
    size_t n = (size_t)(p - s);
    char small[64], *text = n < sizeof small ? small : malloc(n + 1);
    if (!text) return 0;
    memcpy(text, s, n);
    text[n] = '\0';
    double d = strtod(text, NULL);
    if (text != small) free(text);
    lua_pushnumber(L, d);
    j->p = p;
    return 1;
}

// Arrays become 1-based tables; null is ngx.null (light userdata NULL, as cjson.null).
static int json_container(lua_State *L, json_in *j, char close) {
    if (++j->depth > JSON_MAX_DEPTH) return 0;
    luaL_checkstack(L, 4, "json nesting");
    j->p++;
    lua_newtable(L);
    int n = 0;
    json_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return 1;
    }
    for (;;) {
        if (close == '}') {
            json_ws(j);
            if (j->p == j->end || *j->p != '"' || !json_string(L, j)) return 0;
            json_ws(j);
            if (j->p == j->end || *j->p++ != ':') return 0;
            if (!json_value(L, j)) return 0;
            lua_rawset(L, -3);
        } else {
            if (!json_value(L, j)) return 0;
            lua_rawseti(L, -2, ++n);
        }
        json_ws(j);
        if (j->p == j->end) return 0;
        char ch = *j->p++;
        if (ch == close) break;
        if (ch != ',') return 0;
    }
    j->depth--;
    return 1;
}

// Pushes one value and returns 1, or returns 0 on malformed input (leaving junk for the caller
// to drop). Only allocation failures raise.
static int json_value(lua_State *L, json_in *j) {
    json_ws(j);
    if (j->p == j->end) return 0;
    switch (*j->p) {
    case '{': return json_container(L, j, '}');
    case '[': return json_container(L, j, ']');
    case '"': return json_string(L, j);
    case 't': if (!json_literal(j, "true", 4)) return 0; lua_pushboolean(L, 1); return 1;
    case 'f': if (!json_literal(j, "false", 5)) return 0; lua_pushboolean(L, 0); return 1;
    case 'n': if (!json_literal(j, "null", 4)) return 0; lua_pushlightuserdata(L, NULL); return 1;
    default: return json_number(L, j);
    }
}

// MARK: kong.request

static const sb_lua_request *request_of(lua_State *L) { return ctx_of(L)->request; }

// Header names match as nginx's $http_* variables do: case-insensitive, '_' same as '-'.
static char fold(char ch) {
    if (ch >= 'A' && ch <= 'Z') return (char)(ch - 'A' + 'a');
    return ch == '_' ? '-' : ch;
}

static int same_name(const char *a, size_t al, const char *b, size_t bl) {
    if (al != bl) return 0;
    for (size_t i = 0; i < al; i++) if (fold(a[i]) != fold(b[i])) return 0;
    return 1;
}

static const sb_lua_pair *find_header(const sb_lua_request *r, const char *name, size_t len) {
    for (size_t i = 0; i < r->header_count; i++)
        if (same_name(r->headers[i].name, r->headers[i].name_len, name, len)) return &r->headers[i];
    return NULL;
}

static int req_get_method(lua_State *L) {
    const sb_lua_request *r = request_of(L);
    push_bytes(L, r->method, r->method_len);
    return 1;
}

static int req_get_path(lua_State *L) {
    const sb_lua_request *r = request_of(L);
    push_bytes(L, r->path, r->path_len);
    return 1;
}

static int req_get_raw_query(lua_State *L) {
    const sb_lua_request *r = request_of(L);
    push_bytes(L, r->raw_query, r->raw_query_len);
    return 1;
}

static int req_get_path_with_query(lua_State *L) {
    const sb_lua_request *r = request_of(L);
    push_bytes(L, r->path, r->path_len);
    if (r->raw_query_len == 0) return 1;
    lua_pushliteral(L, "?");
    push_bytes(L, r->raw_query, r->raw_query_len);
    lua_concat(L, 3);
    return 1;
}

// Kong returns "" (not nil) when there is no body.
static int req_get_raw_body(lua_State *L) {
    const sb_lua_request *r = request_of(L);
    push_bytes(L, r->has_body ? r->body : NULL, r->has_body ? r->body_len : 0);
    return 1;
}

static int req_get_header(lua_State *L) {
    if (lua_type(L, 1) != LUA_TSTRING) return luaL_error(L, "header name must be a string");  // at the script's line, as the PDK
    size_t len;
    const char *name = lua_tolstring(L, 1, &len);
    const sb_lua_pair *h = find_header(request_of(L), name, len);
    if (h) push_bytes(L, h->value, h->value_len);
    else lua_pushnil(L);
    return 1;
}

// t[name] = value, or an array of values once a name repeats (ngx.req.get_headers' shape).
static void multimap_add(lua_State *L, int t, const sb_lua_pair *pair) {
    push_bytes(L, pair->name, pair->name_len);
    lua_pushvalue(L, -1);
    lua_rawget(L, t);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        push_bytes(L, pair->value, pair->value_len);
        lua_rawset(L, t);
    } else if (lua_istable(L, -1)) {
        push_bytes(L, pair->value, pair->value_len);
        lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
        lua_pop(L, 2);
    } else {
        lua_createtable(L, 2, 0);
        lua_insert(L, -2);
        lua_rawseti(L, -2, 1);
        push_bytes(L, pair->value, pair->value_len);
        lua_rawseti(L, -2, 2);
        lua_rawset(L, t);
    }
}

static int headers_index(lua_State *L) {
    if (lua_type(L, 2) != LUA_TSTRING) return 0;
    size_t n;
    const char *key = lua_tolstring(L, 2, &n);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < n; i++) luaL_addchar(&b, fold(key[i]));
    luaL_pushresult(&b);
    lua_rawget(L, 1);
    return 1;
}

// Upvalue 1: the metatable making lookups case-insensitive, as ngx.req.get_headers' result.
static int req_get_headers(lua_State *L) {
    const sb_lua_request *r = request_of(L);
    lua_newtable(L);
    int t = lua_gettop(L);
    for (size_t i = 0; i < r->header_count; i++) multimap_add(L, t, &r->headers[i]);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setmetatable(L, t);
    return 1;
}

static int req_get_query(lua_State *L) {
    const sb_lua_request *r = request_of(L);
    lua_newtable(L);
    int t = lua_gettop(L);
    for (size_t i = 0; i < r->query_count; i++) multimap_add(L, t, &r->query[i]);
    return 1;
}

static int req_get_query_arg(lua_State *L) {
    if (lua_type(L, 1) != LUA_TSTRING) return luaL_error(L, "query argument name must be a string");
    size_t len;
    const char *name = lua_tolstring(L, 1, &len);
    const sb_lua_request *r = request_of(L);
    for (size_t i = 0; i < r->query_count; i++) {
        const sb_lua_pair *q = &r->query[i];
        if (q->name_len == len && (len == 0 || memcmp(q->name, name, len) == 0)) {
            push_bytes(L, q->value, q->value_len);
            return 1;
        }
    }
    lua_pushnil(L);
    return 1;
}

// kong.request.get_body([mimetype]): JSON only. Returns body, nil, mimetype or nil, err[, mimetype]
// with the PDK's messages.
static int req_get_body(lua_State *L) {
    const sb_lua_request *r = request_of(L);
    const char *type;
    size_t type_len;
    if (lua_type(L, 1) == LUA_TSTRING) {
        type = lua_tolstring(L, 1, &type_len);
    } else {
        const sb_lua_pair *h = find_header(r, "content-type", 12);
        if (!h) {
            lua_pushnil(L);
            lua_pushliteral(L, "missing content type");
            return 2;
        }
        type = h->value ? h->value : "";
        type_len = h->value ? h->value_len : 0;
    }
    static const char json_type[] = "application/json";
    size_t jn = sizeof json_type - 1;
    int is_json = type_len >= jn;
    for (size_t i = 0; is_json && i < jn; i++) is_json = fold(type[i]) == json_type[i];
    if (!is_json) {
        lua_pushnil(L);
        lua_pushliteral(L, "unsupported content type '");
        push_bytes(L, type, type_len);
        lua_pushliteral(L, "'");
        lua_concat(L, 3);
        return 2;
    }
    int top = lua_gettop(L);
    json_in j = {r->has_body && r->body ? r->body : "", NULL, 0};
    j.end = j.p + (r->has_body && r->body ? r->body_len : 0);
    int ok = json_value(L, &j);
    if (ok) json_ws(&j);
    if (ok && j.p == j.end && lua_istable(L, -1)) {  // scalars are invalid bodies, as in the PDK
        lua_pushnil(L);
        lua_pushliteral(L, "application/json");
        return 3;
    }
    lua_settop(L, top);
    lua_pushnil(L);
    lua_pushliteral(L, "invalid json body");
    lua_pushliteral(L, "application/json");
    return 3;
}

static int noop(lua_State *L) {
    (void)L;
    return 0;
}

// MARK: kong.client, kong.router, the rest of kong.request, ngx, bit

static void set_function(lua_State *L, const char *name, lua_CFunction f);
static void make_readonly(lua_State *L, const char *name, int callable);

static const sb_lua_pair *find_fact(const sb_lua_request *r, const char *name) {
    size_t len = strlen(name);
    for (size_t i = 0; i < r->fact_count; i++)
        if (r->facts[i].name_len == len && memcmp(r->facts[i].name, name, len) == 0) return &r->facts[i];
    return NULL;
}

// Pushes the fact (a string), or nil; returns whether it was there.
static int push_fact(lua_State *L, const char *name) {
    const sb_lua_pair *f = find_fact(request_of(L), name);
    if (f) push_bytes(L, f->value, f->value_len);
    else lua_pushnil(L);
    return f != NULL;
}

static int push_fact_number(lua_State *L, const char *name) {
    const sb_lua_pair *f = find_fact(request_of(L), name);
    if (!f) {
        lua_pushnil(L);
        return 0;
    }
    char digits[32];
    copy_detail(digits, sizeof digits, f->value, f->value_len);
    lua_pushnumber(L, strtod(digits, NULL));
    return 1;
}

// The fact named by upvalue 1 (a string, or a number when upvalue 2 is true).
static int fact_getter(lua_State *L) {
    const char *name = lua_tostring(L, lua_upvalueindex(1));
    if (lua_toboolean(L, lua_upvalueindex(2))) push_fact_number(L, name);
    else push_fact(L, name);
    return 1;
}

static void set_fact_getter(lua_State *L, const char *function, const char *fact, int number) {
    lua_pushstring(L, fact);
    lua_pushboolean(L, number);
    lua_pushcclosure(L, fact_getter, 2);
    lua_setfield(L, -2, function);
}

// A table of the facts `<prefix>.<field>` for `fields`, or nil when `<prefix>.id` is absent.
static int push_entity(lua_State *L, const char *prefix, const char *const *fields) {
    char name[64];
    snprintf(name, sizeof name, "%s.id", prefix);
    if (!find_fact(request_of(L), name)) {
        lua_pushnil(L);
        return 1;
    }
    lua_newtable(L);
    for (; *fields; fields++) {
        snprintf(name, sizeof name, "%s.%s", prefix, *fields);
        if (push_fact(L, name)) lua_setfield(L, -2, *fields);
        else lua_pop(L, 1);
    }
    return 1;
}

static int client_get_consumer(lua_State *L) {
    static const char *const fields[] = {"id", "username", "custom_id", NULL};
    return push_entity(L, "consumer", fields);
}

static int client_get_credential(lua_State *L) {
    static const char *const fields[] = {"id", NULL};
    push_entity(L, "credential", fields);
    if (!lua_istable(L, -1)) return 1;
    if (push_fact(L, "consumer.id")) {  // credential, consumer id
        lua_createtable(L, 0, 1);
        lua_insert(L, -2);
        lua_setfield(L, -2, "id");
        lua_setfield(L, -2, "consumer");
    } else {
        lua_pop(L, 1);  // the nil: the credential stays on top
    }
    return 1;
}

static int router_get_route(lua_State *L) {
    static const char *const fields[] = {"id", "name", NULL};
    return push_entity(L, "route", fields);
}

static int router_get_service(lua_State *L) {
    static const char *const fields[] = {"id", "name", NULL};
    return push_entity(L, "service", fields);
}

static int ngx_now(lua_State *L) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    // ngx.now() has millisecond resolution.
    lua_pushnumber(L, (double)t.tv_sec + (double)(t.tv_nsec / 1000000) / 1000.0);
    return 1;
}

static int ngx_time(lua_State *L) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    lua_pushnumber(L, (double)t.tv_sec);
    return 1;
}

// ngx.req.get_body_data(): the raw body, nil without one.
static int ngx_get_body_data(lua_State *L) {
    const sb_lua_request *r = request_of(L);
    if (r->has_body && r->body_len > 0) push_bytes(L, r->body, r->body_len);
    else lua_pushnil(L);
    return 1;
}

// LuaJIT's BitOp: numbers taken modulo 2^32 as signed 32-bit integers.
static int32_t tobit(lua_State *L, int index) {
    lua_Number n = luaL_checknumber(L, index);
    // LuaJIT adds 2^52 + 2^51 and keeps the low word: a fraction rounds to nearest, ties to even
    // (the FPU's mode), then the value is taken modulo 2^32.
    if (!(n == n) || n >= 9.2e18 || n <= -9.2e18) return 0;
    return (int32_t)(uint32_t)(int64_t)nearbyint(n);
}

static int bit_tobit(lua_State *L) { lua_pushnumber(L, tobit(L, 1)); return 1; }
static int bit_bnot(lua_State *L) { lua_pushnumber(L, (int32_t)~(uint32_t)tobit(L, 1)); return 1; }

static int bit_fold(lua_State *L, int op) {
    int n = lua_gettop(L);
    uint32_t acc = (uint32_t)tobit(L, 1);
    for (int i = 2; i <= n; i++) {
        uint32_t v = (uint32_t)tobit(L, i);
        acc = op == 0 ? (acc & v) : op == 1 ? (acc | v) : (acc ^ v);
    }
    lua_pushnumber(L, (int32_t)acc);
    return 1;
}
static int bit_band(lua_State *L) { return bit_fold(L, 0); }
static int bit_bor(lua_State *L) { return bit_fold(L, 1); }
static int bit_bxor(lua_State *L) { return bit_fold(L, 2); }

static int bit_shift(lua_State *L, int kind) {
    uint32_t x = (uint32_t)tobit(L, 1);
    unsigned s = (unsigned)tobit(L, 2) & 31;
    uint32_t r = kind == 0 ? x << s : kind == 1 ? x >> s : (uint32_t)((int32_t)x >> s);
    lua_pushnumber(L, (int32_t)r);
    return 1;
}
static int bit_lshift(lua_State *L) { return bit_shift(L, 0); }
static int bit_rshift(lua_State *L) { return bit_shift(L, 1); }
static int bit_arshift(lua_State *L) { return bit_shift(L, 2); }

static int bit_rol(lua_State *L) {
    uint32_t x = (uint32_t)tobit(L, 1);
    unsigned s = (unsigned)tobit(L, 2) & 31;
    lua_pushnumber(L, (int32_t)(s ? (x << s) | (x >> (32 - s)) : x));
    return 1;
}

static int bit_ror(lua_State *L) {
    uint32_t x = (uint32_t)tobit(L, 1);
    unsigned s = (unsigned)tobit(L, 2) & 31;
    lua_pushnumber(L, (int32_t)(s ? (x >> s) | (x << (32 - s)) : x));
    return 1;
}

static int bit_bswap(lua_State *L) {
    uint32_t x = (uint32_t)tobit(L, 1);
    x = (x >> 24) | ((x >> 8) & 0xff00) | ((x << 8) & 0xff0000) | (x << 24);
    lua_pushnumber(L, (int32_t)x);
    return 1;
}

// bit.tohex(x [, n]): the low |n| nibbles (default 8), upper-case when n < 0.
static int bit_tohex(lua_State *L) {
    uint32_t x = (uint32_t)tobit(L, 1);
    int32_t requested = lua_isnoneornil(L, 2) ? 8 : tobit(L, 2);
    const char *digits = "0123456789abcdef";
    // Negated as unsigned: -INT32_MIN would overflow (LuaJIT does the same).
    uint32_t magnitude = (uint32_t)requested;
    if (requested < 0) {
        magnitude = 0u - magnitude;
        digits = "0123456789ABCDEF";
    }
    int n = magnitude > 8 ? 8 : (int)magnitude;
    char out[8];
    for (int i = n - 1; i >= 0; i--) {
        out[i] = digits[x & 15];
        x >>= 4;
    }
    lua_pushlstring(L, out, (size_t)n);
    return 1;
}

static void push_bit(lua_State *L) {
    static const luaL_Reg functions[] = {
        {"tobit", bit_tobit}, {"bnot", bit_bnot}, {"band", bit_band}, {"bor", bit_bor}, {"bxor", bit_bxor},
        {"lshift", bit_lshift}, {"rshift", bit_rshift}, {"arshift", bit_arshift}, {"rol", bit_rol},
        {"ror", bit_ror}, {"bswap", bit_bswap}, {"tohex", bit_tohex}, {NULL, NULL}};
    lua_createtable(L, 0, 12);
    for (const luaL_Reg *f = functions; f->name; f++) set_function(L, f->name, f->func);
    make_readonly(L, "bit", 0);
}

// MARK: The environment

static int readonly_newindex(lua_State *L) {
    const char *key = lua_type(L, 2) == LUA_TSTRING || lua_type(L, 2) == LUA_TNUMBER
                          ? lua_tostring(L, 2) : luaL_typename(L, 2);
    return luaL_error(L, "Cannot modify %s.%s. Protected by the sandbox.", lua_tostring(L, lua_upvalueindex(1)), key);
}

// Replaces the table at the top with an empty proxy reading through to it and refusing writes
// (rawset and setmetatable are not in the sandbox, so the proxy cannot be bypassed).
static void make_readonly(lua_State *L, const char *name, int callable) {
    lua_newtable(L);
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_pushcclosure(L, readonly_newindex, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    if (callable) {  // kong.log(...) is itself a logging call
        lua_pushcfunction(L, noop);
        lua_setfield(L, -2, "__call");
    }
    lua_setmetatable(L, -2);
    lua_remove(L, -2);
}

static void set_function(lua_State *L, const char *name, lua_CFunction f) {
    lua_pushcfunction(L, f);
    lua_setfield(L, -2, name);
}

// kong.request.get_headers / ngx.req.get_headers: a closure over the case-insensitive metatable.
static void push_headers_getter(lua_State *L) {
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, headers_index);
    lua_setfield(L, -2, "__index");
    lua_pushcclosure(L, req_get_headers, 1);
}

static void push_kong(lua_State *L) {
    lua_createtable(L, 0, 4);

    lua_createtable(L, 0, 12);
    set_function(L, "get_method", req_get_method);
    set_function(L, "get_path", req_get_path);
    set_function(L, "get_raw_query", req_get_raw_query);
    set_function(L, "get_path_with_query", req_get_path_with_query);
    set_function(L, "get_raw_body", req_get_raw_body);
    set_function(L, "get_body", req_get_body);
    set_function(L, "get_header", req_get_header);
    set_function(L, "get_query", req_get_query);
    set_function(L, "get_query_arg", req_get_query_arg);
    set_fact_getter(L, "get_host", "host", 0);
    set_fact_getter(L, "get_scheme", "scheme", 0);
    set_fact_getter(L, "get_port", "port", 1);
    set_fact_getter(L, "get_forwarded_host", "forwarded_host", 0);
    set_fact_getter(L, "get_forwarded_scheme", "forwarded_scheme", 0);
    set_fact_getter(L, "get_forwarded_port", "forwarded_port", 1);
    push_headers_getter(L);
    lua_setfield(L, -2, "get_headers");
    make_readonly(L, "kong.request", 0);
    lua_setfield(L, -2, "request");

    lua_createtable(L, 0, 6);
    set_fact_getter(L, "get_ip", "client_ip", 0);
    set_fact_getter(L, "get_forwarded_ip", "forwarded_ip", 0);
    set_fact_getter(L, "get_protocol", "scheme", 0);
    set_function(L, "get_consumer", client_get_consumer);
    set_function(L, "get_credential", client_get_credential);
    make_readonly(L, "kong.client", 0);
    lua_setfield(L, -2, "client");

    lua_createtable(L, 0, 2);
    set_function(L, "get_route", router_get_route);
    set_function(L, "get_service", router_get_service);
    make_readonly(L, "kong.router", 0);
    lua_setfield(L, -2, "router");

    static const char *const levels[] = {"emerg", "alert", "crit", "err", "warn", "notice", "info", "debug", NULL};
    lua_createtable(L, 0, 8);
    for (int i = 0; levels[i]; i++) set_function(L, levels[i], noop);
    make_readonly(L, "kong.log", 1);
    lua_setfield(L, -2, "log");

    make_readonly(L, "kong", 0);
}

// Copies t[name] for each name (all of t when names is NULL) from the table at `from` into a new
// table left at the top.
static void copy_fields(lua_State *L, int from, const char *const *names) {
    lua_newtable(L);
    if (names) {
        for (; *names; names++) {
            lua_getfield(L, from, *names);
            lua_setfield(L, -2, *names);
        }
        return;
    }
    lua_pushnil(L);
    while (lua_next(L, from)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
}

static const char *const base_names[] = {
    "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber", "tostring",
    "type", "unpack", "xpcall", "rawequal", "rawget", "_VERSION", NULL};
// No os.date: it formats through localtime()/gmtime()'s shared static buffer, which concurrent
// calls on other threads would overwrite.
static const char *const os_names[] = {"clock", "difftime", "time", NULL};
static const char *const os_dangerous[] = {"date", "execute", "exit", "getenv", "remove", "rename", "tmpname", "setlocale", NULL};

// Opens the libraries into the real globals, hardens what stays reachable through the string
// metatable, and leaves the sandbox environment at the top of the stack.
static void build_sandbox(lua_State *L) {
    static const luaL_Reg libs[] = {
        {"", luaopen_base}, {LUA_TABLIBNAME, luaopen_table}, {LUA_STRLIBNAME, luaopen_string},
        {LUA_MATHLIBNAME, luaopen_math}, {LUA_OSLIBNAME, luaopen_os}, {NULL, NULL}};
    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        lua_pushcfunction(L, lib->func);
        lua_pushstring(L, lib->name);
        lua_call(L, 1, 0);
    }

    // ("").dump would otherwise reach string.dump through the shared string metatable.
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    wrap(L, "rep", guarded_rep);
    wrap_pattern(L, "find", 1);
    wrap_pattern(L, "match", 0);
    wrap_pattern(L, "gmatch", 0);
    wrap_pattern(L, "gsub", 0);
    // LUA_COMPAT_GFIND (Debian's build) adds gfind, an alias of the unwrapped gmatch.
    lua_pushnil(L);
    lua_setfield(L, -2, "gfind");
    lua_pop(L, 1);
    lua_getglobal(L, LUA_TABLIBNAME);
    wrap(L, "insert", guarded_insert);
    wrap(L, "remove", guarded_remove);
    wrap(L, "sort", guarded_sort);
    lua_pop(L, 1);
    lua_getglobal(L, LUA_OSLIBNAME);
    for (const char *const *name = os_dangerous; *name; name++) {
        lua_pushnil(L);
        lua_setfield(L, -2, *name);
    }
    lua_pop(L, 1);

    lua_newtable(L);
    int env = lua_gettop(L);
    for (const char *const *name = base_names; *name; name++) {
        lua_getglobal(L, *name);
        lua_setfield(L, env, *name);
    }
    static const char *const libnames[] = {LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME, LUA_OSLIBNAME, NULL};
    for (const char *const *name = libnames; *name; name++) {
        lua_getglobal(L, *name);
        copy_fields(L, lua_gettop(L), strcmp(*name, LUA_OSLIBNAME) == 0 ? os_names : NULL);
        lua_setfield(L, env, *name);
        lua_pop(L, 1);
    }
    push_kong(L);
    lua_setfield(L, env, "kong");
    lua_createtable(L, 0, 4);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    set_function(L, "now", ngx_now);
    set_function(L, "time", ngx_time);
    lua_createtable(L, 0, 4);
    push_headers_getter(L);
    lua_setfield(L, -2, "get_headers");
    set_function(L, "get_uri_args", req_get_query);
    set_function(L, "get_method", req_get_method);
    set_function(L, "get_body_data", ngx_get_body_data);
    make_readonly(L, "ngx.req", 0);
    lua_setfield(L, -2, "req");
    make_readonly(L, "ngx", 0);
    lua_setfield(L, env, "ngx");
    push_bit(L);
    lua_setfield(L, env, "bit");

    // Empty the real globals: library functions run with them as environment, and nothing
    // (load, setfenv, rawset, ...) should be left there to find.
    lua_pushnil(L);
    while (lua_next(L, LUA_GLOBALSINDEX)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, LUA_GLOBALSINDEX);
    }
}

// MARK: Entry points

// loadstring's default chunk name is the source itself; luaO_chunkid reads at most its first
// line, cut well before CHUNKNAME_PREFIX bytes, so a prefix gives the same `[string "..."]`.
static void chunk_name(const char *source, size_t len, char name[CHUNKNAME_PREFIX + 1]) {
    copy_detail(name, CHUNKNAME_PREFIX + 1, source, len);
}

// Precompiled chunks are refused: 5.1 does not verify bytecode, which is a sandbox escape.
static int is_binary(const char *source, size_t len) { return len > 0 && source[0] == LUA_SIGNATURE[0]; }

static const char binary_message[] = "attempt to load a binary chunk";

int sb_lua_check(const char *source, size_t len, char *detail, size_t detail_len) {
    copy_detail(detail, detail_len, NULL, 0);
    if (!source) source = "";
    if (is_binary(source, len)) {
        copy_detail(detail, detail_len, binary_message, sizeof binary_message - 1);
        return 1;
    }
    sb_ctx c = {.memory_limit = CHECK_MEMORY_LIMIT};
    lua_State *L = lua_newstate(sb_alloc, &c);
    if (!L) {
        copy_detail(detail, detail_len, "not enough memory", 17);
        return 1;
    }
    char name[CHUNKNAME_PREFIX + 1];
    chunk_name(source, len, name);
    // lua_load runs the parser protected; its error value is always a string.
    int status = luaL_loadbuffer(L, source, len, name);
    if (status) {
        size_t n;
        const char *message = lua_tolstring(L, -1, &n);
        copy_detail(detail, detail_len, message, n);
    }
    lua_close(L);
    return status;
}

static void set_result(sb_lua_result *out, int status, const char *detail, size_t n) {
    out->status = status;
    copy_detail(out->detail, sizeof out->detail, detail, n);
}

// Runs protected (lua_cpcall): setup, load and the script's own pcall.
static int run_protected(lua_State *L) {
    sb_ctx *c = lua_touserdata(L, 1);
    lua_settop(L, 0);
    build_sandbox(L);
    int env = lua_gettop(L);

    char name[CHUNKNAME_PREFIX + 1];
    chunk_name(c->source, c->source_len, name);
    int status = luaL_loadbuffer(L, c->source, c->source_len, name);
    if (status) {
        size_t n;
        const char *message = lua_tolstring(L, -1, &n);
        set_result(c->out, SB_LUA_SYNTAX_ERROR, message, n);
        return 0;
    }
    lua_pushvalue(L, env);
    lua_setfenv(L, -2);

    lua_sethook(L, sb_hook, LUA_MASKCALL | LUA_MASKCOUNT, HOOK_STEP);
    status = lua_pcall(L, 0, 1, 0);
    lua_sethook(L, NULL, 0, 0);
    if (status) {
        int type = lua_type(L, -1);
        if (type == LUA_TSTRING || type == LUA_TNUMBER) {
            size_t n;
            const char *message = lua_tolstring(L, -1, &n);
            set_result(c->out, SB_LUA_RUNTIME_ERROR, message, n);
        } else {
            lua_pushfstring(L, "(error object is a %s value)", lua_typename(L, type));
            set_result(c->out, SB_LUA_RUNTIME_ERROR, lua_tostring(L, -1), strlen(lua_tostring(L, -1)));
        }
        return 0;
    }
    if (lua_type(L, -1) == LUA_TNUMBER) {
        c->out->number = lua_tonumber(L, -1);
        set_result(c->out, SB_LUA_OK, NULL, 0);
    } else {
        const char *type = luaL_typename(L, -1);
        set_result(c->out, SB_LUA_BAD_RETURN, type, strlen(type));
    }
    return 0;
}

void sb_lua_run(const char *source, size_t len, const sb_lua_request *request,
                long instruction_limit, long time_limit_ms, size_t memory_limit,
                sb_lua_result *out) {
    static const sb_lua_request empty_request;
    memset(out, 0, sizeof *out);
    if (!source) source = "";
    if (is_binary(source, len)) {
        set_result(out, SB_LUA_SYNTAX_ERROR, binary_message, sizeof binary_message - 1);
        return;
    }
    sb_ctx c = {
        .memory_limit = memory_limit,
        .instruction_limit = instruction_limit,
        .request = request ? request : &empty_request,
        .source = source,
        .source_len = len,
        .out = out,
    };
    if (time_limit_ms > 0) {
        clock_gettime(CLOCK_MONOTONIC, &c.deadline);
        c.deadline.tv_sec += time_limit_ms / 1000;
        c.deadline.tv_nsec += (time_limit_ms % 1000) * 1000000L;
        if (c.deadline.tv_nsec >= 1000000000L) {
            c.deadline.tv_sec++;
            c.deadline.tv_nsec -= 1000000000L;
        }
        c.has_deadline = 1;
    }
    lua_State *L = lua_newstate(sb_alloc, &c);
    if (L) {
        if (lua_cpcall(L, run_protected, &c) != 0) {
            // Setup failed (in practice: out of memory); the message is a string then.
            size_t n = 0;
            const char *message = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : "sandbox setup failed";
            set_result(out, SB_LUA_RUNTIME_ERROR, message, n ? n : strlen(message));
        }
    } else if (!c.tripped) {
        set_result(out, SB_LUA_RUNTIME_ERROR, "cannot create a Lua state", 25);
    }
    // A limit wins over whatever the script made of its failure (pcall, a fallback value, ...).
    if (c.tripped) {
        const char *message = trip_message(c.tripped);
        set_result(out, SB_LUA_LIMIT, message, strlen(message));
    }
    if (L) lua_close(L);
}
