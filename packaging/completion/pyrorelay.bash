# bash completion for pyrorelay.
# Install: cp pyrorelay.bash /usr/share/bash-completion/completions/pyrorelay
# or source it from ~/.bashrc. The words come from the binary itself
# (urfave/cli's --generate-bash-completion), so they follow its version.

_pyrorelay_complete() {
    local cur words
    cur="${COMP_WORDS[COMP_CWORD]}"
    if [[ "$cur" == -* ]]; then
        words=$("${COMP_WORDS[@]:0:COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
    else
        words=$("${COMP_WORDS[@]:0:COMP_CWORD}" --generate-bash-completion 2>/dev/null)
    fi
    # shellcheck disable=SC2207 # the words never contain spaces
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}

complete -o bashdefault -o default -F _pyrorelay_complete pyrorelay
