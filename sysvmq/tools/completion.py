"""``sysvmq completion bash|zsh|fish``: a completion script made from the command's own
parsers, so it knows every subcommand and option there is. Queue keys and ids come from
``sysvmq ls``, run by the shell when they are asked for."""

import argparse
from typing import Callable, Dict, List, NamedTuple

__all__ = ["SHELLS", "Command", "commands_of", "script"]

SHELLS = ("bash", "zsh", "fish")

# The KEY and ID columns of `sysvmq ls`, private queues (key 0) left out of the keys.
_KEYS = "awk 'NR > 1 && $1 != \"0x00000000\" { print $1 }'"
_IDS = "awk 'NR > 1 { print $2 }'"


class Command(NamedTuple):
    """What completion needs to know of one subcommand."""

    name: str
    help: str
    options: List[str]
    valued: List[str]
    """Options that take a value (completion offers ids after --id, nothing after the others)."""
    queues: bool
    """Whether a positional argument names a queue by key."""
    option_help: Dict[str, str]
    choices: List[str]
    """The words a positional argument may be (`completion`'s shells); empty if any."""


def commands_of(parsers: Dict[str, argparse.ArgumentParser]) -> List[Command]:
    """The subcommands, their options, and which options take a value."""
    found = []
    for name, parser in parsers.items():
        options: List[str] = []
        valued: List[str] = []
        option_help: Dict[str, str] = {}
        queues = False
        choices: List[str] = []
        for action in parser._actions:
            if not action.option_strings:
                queues = queues or action.dest in ("key", "keys")
                choices.extend(str(choice) for choice in action.choices or ())
                continue
            options.extend(action.option_strings)
            if action.nargs != 0:
                valued.extend(action.option_strings)
            for option in action.option_strings:
                option_help[option] = (action.help or "").replace("%%", "%")
        found.append(Command(name, parser.description or "", options, valued, queues, option_help, choices))
    return found


def _cases(commands: List[Command], indent: str, words: Callable[[List[str]], str]) -> str:
    """A branch of the script's `case $command` per subcommand, setting what the completion
    reads: its options, those that take a value, whether it names queues, its choices.
    `words` writes a list as the shell keeps it (a string in bash, an array in zsh)."""
    return "\n".join(
        f"{indent}{c.name}) options={words(c.options)}; valued={words(c.valued)}; queues={int(c.queues)};"
        f" choices={words(c.choices)} ;;"
        for c in commands
    )


def _bash(commands: List[Command]) -> str:
    cases = _cases(commands, " " * 8, lambda words: "'" + " ".join(words) + "'")
    names = " ".join(c.name for c in commands)
    return f"""# bash completion for sysvmq: source <(sysvmq completion bash)
_sysvmq() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}} command= i
    local options= valued= queues=0 choices=
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${{COMP_WORDS[i]}} in -*) ;; *) command=${{COMP_WORDS[i]}}; break ;; esac
    done
    COMPREPLY=()
    case $command in
        '') COMPREPLY=($(compgen -W '{names} -h --help --version' -- "$cur")); return ;;
{cases}
        *) return ;;
    esac
    if [[ " $valued " == *" $prev "* ]]; then
        [[ $prev == --id ]] && COMPREPLY=($(compgen -W "$("${{COMP_WORDS[0]}}" ls 2>/dev/null | {_IDS})" -- "$cur"))
    elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$options" -- "$cur"))
    elif ((queues)); then
        COMPREPLY=($(compgen -W "$("${{COMP_WORDS[0]}}" ls 2>/dev/null | {_KEYS})" -- "$cur"))
    elif [[ -n $choices ]]; then
        COMPREPLY=($(compgen -W "$choices" -- "$cur"))
    fi
}}
complete -F _sysvmq sysvmq
"""


def _zsh(commands: List[Command]) -> str:
    cases = _cases(commands, " " * 4, lambda words: "(" + " ".join(words) + ")")
    names = " ".join(c.name for c in commands)
    return f"""#compdef sysvmq
# zsh completion for sysvmq: source <(sysvmq completion zsh) after compinit, or save it
# as _sysvmq in a folder of $fpath.
_sysvmq() {{
  local command= cur=$words[CURRENT] prev=$words[CURRENT-1] queues=0 i
  local -a options valued choices
  for ((i = 2; i < CURRENT; i++)); do
    [[ $words[i] == -* ]] || {{ command=$words[i]; break }}
  done
  case $command in
    '') compadd -- {names} -h --help --version; return ;;
{cases}
    *) return 1 ;;
  esac
  if (( ${{valued[(Ie)$prev]}} )); then
    [[ $prev == --id ]] && compadd -- ${{(f)"$($words[1] ls 2>/dev/null | {_IDS})"}}
  elif [[ $cur == -* ]]; then
    compadd -- $options
  elif (( queues )); then
    compadd -- ${{(f)"$($words[1] ls 2>/dev/null | {_KEYS})"}}
  elif (( $#choices )); then
    compadd -- $choices
  fi
}}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _sysvmq "$@"
else
  compdef _sysvmq sysvmq
fi
"""


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish(commands: List[Command]) -> str:
    lines = [
        "# fish completion for sysvmq: sysvmq completion fish > ~/.config/fish/completions/sysvmq.fish",
        "function __sysvmq_command",
        "    for token in (commandline -opc)[2..-1]",
        "        string match -q -- '-*' $token; or begin; echo $token; return; end",
        "    end",
        "end",
        "function __sysvmq_using",
        '    set -l command (__sysvmq_command); test "$command" = "$argv[1]"',
        "end",
        "function __sysvmq_keys",
        f"    set -l sysvmq (commandline -opc)[1]; $sysvmq ls 2>/dev/null | {_KEYS}",
        "end",
        "function __sysvmq_ids",
        f"    set -l sysvmq (commandline -opc)[1]; $sysvmq ls 2>/dev/null | {_IDS}",
        "end",
        "complete -c sysvmq -f",
        "complete -c sysvmq -n '__sysvmq_using \"\"' -l version -d 'print the version'",
        "complete -c sysvmq -n '__sysvmq_using \"\"' -s h -l help -d 'show the help'",
    ]
    for c in commands:
        lines.append(f"complete -c sysvmq -n '__sysvmq_using \"\"' -a {c.name} -d {_fish_quote(c.help)}")
    for c in commands:
        using = f"-n '__sysvmq_using {c.name}'"
        for option in c.options:
            flag = f"-l {option[2:]}" if option.startswith("--") else f"-s {option[1:]}"
            value = ""
            if option in c.valued:
                value = " -x -a '(__sysvmq_ids)'" if option == "--id" else " -x"
            lines.append(f"complete -c sysvmq {using} {flag}{value} -d {_fish_quote(c.option_help[option])}")
        if c.queues:
            lines.append(f"complete -c sysvmq {using} -a '(__sysvmq_keys)'")
        if c.choices:
            lines.append(f"complete -c sysvmq {using} -a {_fish_quote(' '.join(c.choices))}")
    return "\n".join(lines) + "\n"


def script(shell: str, parsers: Dict[str, argparse.ArgumentParser]) -> str:
    """The completion script for `shell` (one of SHELLS)."""
    makers = {"bash": _bash, "zsh": _zsh, "fish": _fish}
    return makers[shell](commands_of(parsers))
