/* ledgerctl roles [--voters N] [--standbys M] [--dead-after-s S]: show or
 * set the automatic-roles targets (GET/PUT /v1/cluster/roles). */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static void printTargets(const json_t *r)
{
    long long v = json_integer_value(json_object_get(r, "voters"));
    long long s = json_integer_value(json_object_get(r, "standbys"));
    long long d = json_integer_value(json_object_get(r, "dead_after_s"));
    if (v == 0) {
        printf("roles: manual (no targets; dead after %lld s once set)\n", d);
        return;
    }
    printf("roles: automatic: voters %lld, standbys %lld, dead after %lld s\n",
           v, s, d);
}

/* "voters 1,2,3  standbys 4  spares 5" from /v1/cluster. */
static void printMembers(const json_t *cluster)
{
    static const char *roles[] = {"voter", "standby", "spare"};
    const json_t *members = json_object_get(cluster, "members");
    for (size_t k = 0; k < 3; k++) {
        size_t i;
        const json_t *m;
        int first = 1;
        printf("%s%ss ", k == 0 ? "now:   " : "  ", roles[k]);
        json_array_foreach(members, i, m)
        {
            const char *role = json_string_value(json_object_get(m, "role"));
            if (role != NULL && strcmp(role, roles[k]) == 0) {
                printf("%s%lld", first ? "" : ",",
                       (long long)json_integer_value(json_object_get(m, "id")));
                first = 0;
            }
        }
        if (first) {
            printf("-");
        }
    }
    printf("\n");
}

static void printLast(const json_t *r)
{
    const json_t *c = json_object_get(r, "last_change");
    const char *err;
    if (!json_is_object(c)) {
        return;
    }
    err = json_string_value(json_object_get(c, "error"));
    printf("last change: member %lld %s -> %s (%s: %s), %s%s%s, started %s\n",
           (long long)json_integer_value(json_object_get(c, "id")),
           json_string_value(json_object_get(c, "from")),
           json_string_value(json_object_get(c, "to")),
           json_string_value(json_object_get(c, "reason")),
           json_string_value(json_object_get(c, "why")),
           json_string_value(json_object_get(c, "status")),
           err != NULL ? ": " : "", err != NULL ? err : "",
           json_string_value(json_object_get(c, "started")));
}

int ctlCmdRoles(struct ctl *ctl, int argc, char **argv)
{
    struct ctl_flag flags[] = {{"voters", 1, NULL},
                               {"standbys", 1, NULL},
                               {"dead-after-s", 1, NULL},
                               {NULL, 0, NULL}};
    static const char *keys[] = {"voters", "standbys", "dead_after_s"};
    const char *pos[1];
    json_t *body = NULL;
    json_t *answer = NULL;
    json_t *cluster = NULL;
    int n_pos;
    int rv = ctlParseArgs(ctl, "roles", argc, argv, flags, pos, 0, &n_pos);

    if (rv != 0) {
        return CTL_ARGS_EXIT(rv);
    }
    for (int i = 0; i < 3; i++) {
        unsigned long long v;
        char what[32];
        if (flags[i].value == NULL) {
            continue;
        }
        snprintf(what, sizeof what, "--%s", flags[i].name);
        if (ctlParseU64(what, flags[i].value, 0, 1000000, &v) != 0) {
            json_decref(body);
            return CTL_EXIT_USAGE;
        }
        if (body == NULL) {
            body = json_object();
        }
        json_object_set_new(body, keys[i], json_integer((json_int_t)v));
    }
    if (body != NULL) {
        rv = ctlApi(ctl, "set roles", "PUT", "/v1/cluster/roles", body, &answer,
                    NULL);
        json_decref(body);
        if (rv != 0) {
            return rv;
        }
        if (ctl->json) {
            ctlPrintJson(answer);
        } else {
            printTargets(answer);
        }
        json_decref(answer);
        return CTL_EXIT_OK;
    }
    rv = ctlApi(ctl, "get roles", "GET", "/v1/cluster/roles", NULL, &answer,
                NULL);
    if (rv != 0) {
        return rv;
    }
    if (ctl->json) {
        ctlPrintJson(answer);
        json_decref(answer);
        return CTL_EXIT_OK;
    }
    printTargets(answer);
    if (ctlApi(ctl, "get cluster status", "GET", "/v1/cluster", NULL, &cluster,
               NULL) == 0) {
        printMembers(cluster);
        json_decref(cluster);
    }
    printLast(answer);
    json_decref(answer);
    return CTL_EXIT_OK;
}
