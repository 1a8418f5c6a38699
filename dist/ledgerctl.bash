# bash completion for ledgerctl (installed as
# share/bash-completion/completions/ledgerctl; or: source this file).
# Keep the tables in step with `ledgerctl --help` (ctl/usage.c):
# tests/integration/test_install.py checks every command and flag of it.

# Commands, as "word" or "word sub".
_ledgerctl_commands=(
    "cluster up" "cluster down" "status" "member list" "member add"
    "member remove" "member role" "leader transfer" "lag" "roles" "backup"
    "backup verify" "restore" "export" "import" "append" "read" "streams"
    "tls cert" "verify" "bench" "recover" "recover inspect"
)
_ledgerctl_global_flags="--endpoints --token-file --json --timeout-ms --tls-ca
    --tls-cert --tls-key --help --version"
# Flags that take a value (the next word).
_ledgerctl_value_flags=" --endpoints --token-file --timeout-ms --tls-ca
    --tls-cert --tls-key --node --ip --client --nodes --dir
    --raft-port --api-port --wait-s --role --catch-up-ms --interval-ms
    --max-entries --max-ms --type --id --expect --from --limit --consistency
    --clients --size --batch --duration --streams --stream --events --target
    --voters --standbys --dead-after-s --endpoint --stream --from-position
    --after --members "

_ledgerctl_cmd_flags()
{
    case "$1" in
    "cluster up") echo "--nodes --dir --raft-port --api-port --wait-s --tls" ;;
    "tls cert") echo "--node --ip --client --dir --replace" ;;
    "cluster down") echo "--dir" ;;
    "member add") echo "--role --catch-up-ms" ;;
    "member role") echo "--catch-up-ms" ;;
    "lag") echo "--watch --interval-ms --max-entries --max-ms" ;;
    "roles") echo "--voters --standbys --dead-after-s" ;;
    "backup") echo "--endpoint" ;;
    "restore") echo "--dir --nodes --raft-port --api-port --wait-s" ;;
    "export") echo "--stream --from-position --limit" ;;
    "recover") echo "--members --force" ;;
    "streams") echo "--after --limit --consistency" ;;
    "append") echo "--type --id --expect" ;;
    "read") echo "--from --limit --follow --consistency" ;;
    "bench")
        echo "--clients --size --batch --duration --streams --stream --read"
        echo "--spread --events --msgpack --new-streams --target"
        ;;
    esac
}

_ledgerctl()
{
    local cur="${COMP_WORDS[COMP_CWORD]}"
    local prev cmd="" w c i=1 k npos=0 subs="" glue=0
    local -a words=()
    COMPREPLY=()

    # Bash splits words at ':' and '=' (COMP_WORDBREAKS): glue
    # "--endpoints" "=" "h" ":" "1" back into "--endpoints=h:1".
    for ((k = 0; k < COMP_CWORD; k++)); do
        w="${COMP_WORDS[k]}"
        if [[ ${#words[@]} -gt 0 && ($glue -eq 1 || "$w" == ":" || "$w" == "=") ]]; then
            words[${#words[@]} - 1]+="$w"
        else
            words+=("$w")
        fi
        [[ "$w" == ":" || "$w" == "=" ]] && glue=1 || glue=0
    done
    prev="${words[${#words[@]} - 1]}"
    # "--role=" then the value being typed: complete the value of --role.
    [[ "$prev" == --*= ]] && prev="${prev%=}"

    # The value of a flag.
    case "$prev" in
    --token-file | --tls-ca | --tls-cert | --tls-key)
        COMPREPLY=($(compgen -f -- "$cur"))
        return 0
        ;;
    --dir)
        COMPREPLY=($(compgen -d -- "$cur"))
        return 0
        ;;
    --role)
        COMPREPLY=($(compgen -W "voter standby spare" -- "$cur"))
        return 0
        ;;
    --consistency)
        COMPREPLY=($(compgen -W "strong leader any" -- "$cur"))
        return 0
        ;;
    --target)
        COMPREPLY=($(compgen -W "ledger etcd" -- "$cur"))
        return 0
        ;;
    esac
    if [[ "$_ledgerctl_value_flags" == *" $prev "* ]]; then
        return 0 # A number, an address, a name: nothing to offer.
    fi

    # The command so far: words that are not flags or flag values.
    while [ "$i" -lt "${#words[@]}" ]; do
        w="${words[i]}"
        if [[ "$w" == -* ]]; then
            if [[ "$w" != *=* && "$_ledgerctl_value_flags" == *" $w "* ]]; then
                i=$((i + 1))
            fi
        elif [ -z "$cmd" ]; then
            cmd="$w"
        else
            subs=""
            for c in "${_ledgerctl_commands[@]}"; do
                [[ "$c" == "$cmd "* ]] && subs="$subs ${c#* }"
            done
            if [[ "$cmd" != *" "* && " $subs " == *" $w "* ]]; then
                cmd="$cmd $w"
            else
                npos=$((npos + 1))
            fi
        fi
        i=$((i + 1))
    done

    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$(_ledgerctl_cmd_flags "$cmd") \
            $_ledgerctl_global_flags" -- "$cur"))
        return 0
    fi
    if [ -z "$cmd" ]; then
        local first=""
        for c in "${_ledgerctl_commands[@]}"; do
            [[ " $first " == *" ${c%% *} "* ]] || first="$first ${c%% *}"
        done
        COMPREPLY=($(compgen -W "$first" -- "$cur"))
        return 0
    fi
    if [[ "$cmd" != *" "* ]]; then
        subs=""
        for c in "${_ledgerctl_commands[@]}"; do
            [[ "$c" == "$cmd "* ]] && subs="$subs ${c#* }"
        done
        if [ -n "$subs" ] && [ "$npos" -eq 0 ]; then
            COMPREPLY=($(compgen -W "$subs" -- "$cur"))
            # "backup" is also a command of its own, taking a FILE.
            for c in "${_ledgerctl_commands[@]}"; do
                if [ "$c" = "$cmd" ]; then
                    COMPREPLY+=($(compgen -f -- "$cur"))
                fi
            done
            return 0
        fi
    fi
    case "$cmd" in
    "member role")
        if [ "$npos" -eq 1 ]; then
            COMPREPLY=($(compgen -W "voter standby spare" -- "$cur"))
        fi
        ;;
    "append")
        if [ "$npos" -eq 1 ]; then
            COMPREPLY=($(compgen -W "-" -- "$cur"))
        fi
        ;;
    "recover inspect")
        COMPREPLY=($(compgen -d -- "$cur")) # every surviving data dir
        ;;
    "recover")
        if [ "$npos" -eq 0 ]; then
            COMPREPLY=($(compgen -d -- "$cur"))
        fi
        ;;
    "backup" | "backup verify" | "restore" | "import")
        if [ "$npos" -eq 0 ]; then
            COMPREPLY=($(compgen -f -- "$cur"))
        fi
        ;;
    esac
    return 0
}

complete -F _ledgerctl ledgerctl
