// Debian's Lua 5.1 (liblua5.1-0-dev): the interpreter behind ai-rate-limiting-advanced's
// `requestPrompt` cost functions, which Kong users write in Lua 5.1 (LuaJIT) syntax.
#include <lua5.1/lua.h>
#include <lua5.1/lauxlib.h>
#include <lua5.1/lualib.h>
