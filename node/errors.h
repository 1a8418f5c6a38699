/* Every error the API answers: its code (the "error.code" string of
 * docs/api.md, "Error codes") and its HTTP status, in one table.
 *
 * A handler names the error (API_E_NO_LEADER), never a status and a string
 * apart, so the two cannot drift. Two entries may share a code string when
 * the same condition has two statuses (transfer_failed).
 *
 * 429 and 503 answers always carry Retry-After (reply.c). The HTTP server
 * itself (http/server.c) answers bad_request, body_too_large,
 * headers_too_large and overloaded before a request reaches the API.
 */
#ifndef LEDGER_NODE_ERRORS_H
#define LEDGER_NODE_ERRORS_H

#define API_ERRORS(X)                                                          \
    X(EMPTY_BODY, 400, "empty_body")                                           \
    X(MALFORMED_BODY, 400, "malformed_body")                                   \
    X(BAD_BODY, 400, "bad_body")                                               \
    X(BAD_ID, 400, "bad_id")                                                   \
    X(BAD_EVENT, 400, "bad_event")                                             \
    X(BAD_NAME, 400, "bad_name")                                               \
    X(BAD_QUERY, 400, "bad_query")                                             \
    X(REJECTED, 400, "rejected")                                               \
    X(UNAUTHORIZED, 401, "unauthorized")                                       \
    X(FORBIDDEN, 403, "forbidden")                                             \
    X(NOT_FOUND, 404, "not_found")                                             \
    X(STREAM_NOT_FOUND, 404, "stream_not_found")                               \
    X(CHECKPOINT_NOT_FOUND, 404, "checkpoint_not_found")                       \
    X(POSITION_NOT_FOUND, 404, "position_not_found")                           \
    X(MEMBER_NOT_FOUND, 404, "member_not_found")                               \
    X(METHOD_NOT_ALLOWED, 405, "method_not_allowed")                           \
    X(VERSION_CONFLICT, 409, "version_conflict")                               \
    X(DUPLICATE_ID_CONFLICT, 409, "duplicate_id_conflict")                     \
    X(MEMBER_EXISTS, 409, "member_exists")                                     \
    X(ID_IN_USE, 409, "id_in_use")                                             \
    X(ADDRESS_IN_USE, 409, "address_in_use")                                   \
    X(CHANGE_IN_PROGRESS, 409, "change_in_progress")                           \
    X(LAST_VOTER, 409, "last_voter")                                           \
    X(CANCELLED, 409, "cancelled")                                             \
    X(NOT_A_VOTER, 409, "not_a_voter")                                         \
    X(BAD_ROLE, 409, "bad_role")                                               \
    X(BAD_ROLES, 400, "bad_roles")                                             \
    X(ROLES_UNMET, 409, "roles_unmet")                                         \
    X(AUTOMATIC_ROLES, 409, "automatic_roles")                                 \
    X(NO_OTHER_VOTER, 409, "transfer_failed")                                  \
    X(QUEUE_FULL, 429, "queue_full")                                           \
    X(RATE_LIMITED, 429, "rate_limited")                                       \
    X(STORE_ERROR, 500, "store_error")                                         \
    X(INTERNAL, 500, "internal")                                               \
    X(MEMBERSHIP_FAILED, 500, "membership_failed")                             \
    X(INSUFFICIENT_STORAGE, 507, "insufficient_storage")                       \
    X(NO_LEADER, 503, "no_leader")                                             \
    X(LEADER_UNREACHABLE, 503, "leader_unreachable")                           \
    X(NOT_LEADER, 503, "not_leader")                                           \
    X(NOT_CONSISTENT, 503, "not_consistent")                                   \
    X(OUTCOME_UNKNOWN, 503, "outcome_unknown")                                 \
    X(UNAVAILABLE, 503, "unavailable")                                         \
    X(STORAGE_ERROR, 503, "storage_error")                                     \
    X(STORE_CORRUPT, 503, "store_corrupt")                                     \
    X(SHUTTING_DOWN, 503, "shutting_down")                                     \
    X(OUT_OF_MEMORY, 503, "out_of_memory")                                     \
    X(CATCH_UP_FAILED, 503, "catch_up_failed")                                 \
    X(TRANSFER_FAILED, 503, "transfer_failed")

enum api_error {
#define API__ERROR_ENUM(name, status, code) API_E_##name,
    API_ERRORS(API__ERROR_ENUM)
#undef API__ERROR_ENUM
        API_E__COUNT
};

/* The "error.code" string and the HTTP status of an error. */
const char *api_error_code(enum api_error e);
int api_error_status(enum api_error e);

#endif /* LEDGER_NODE_ERRORS_H */
