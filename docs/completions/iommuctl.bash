#!/bin/bash

__iommuctl_cursor_index_in_current_word() {
    local remaining="${COMP_LINE}"

    local word
    for word in "${COMP_WORDS[@]::COMP_CWORD}"; do
        remaining="${remaining##*([[:space:]])"${word}"*([[:space:]])}"
    done

    local -ir index="$((COMP_POINT - ${#COMP_LINE} + ${#remaining}))"
    if [[ "${index}" -le 0 ]]; then
        printf 0
    else
        printf %s "${index}"
    fi
}

# positional arguments:
#
# - 1: the current (sub)command's count of positional arguments
#
# required variables:
#
# - repeating_flags: the repeating flags that the current (sub)command can accept
# - non_repeating_flags: the non-repeating flags that the current (sub)command can accept
# - repeating_options: the repeating options that the current (sub)command can accept
# - non_repeating_options: the non-repeating options that the current (sub)command can accept
# - positional_number: value ignored
# - unparsed_words: unparsed words from the current command line
#
# modified variables:
#
# - non_repeating_flags: remove flags for this (sub)command that are already on the command line
# - non_repeating_options: remove options for this (sub)command that are already on the command line
# - positional_number: set to the current positional number
# - unparsed_words: remove all flags, options, and option values for this (sub)command
__iommuctl_offer_flags_options() {
    local -ir positional_count="${1}"
    positional_number=0

    local was_flag_option_terminator_seen=false
    local is_parsing_option_value=false

    local -ar unparsed_word_indices=("${!unparsed_words[@]}")
    local -i word_index
    for word_index in "${unparsed_word_indices[@]}"; do
        if "${is_parsing_option_value}"; then
            # This word is an option value:
            # Reset marker for next word iff not currently the last word
            [[ "${word_index}" -ne "${unparsed_word_indices[${#unparsed_word_indices[@]} - 1]}" ]] && is_parsing_option_value=false
            unset "unparsed_words[${word_index}]"
            # Do not process this word as a flag or an option
            continue
        fi

        local word="${unparsed_words["${word_index}"]}"
        if ! "${was_flag_option_terminator_seen}"; then
            case "${word}" in
            --)
                unset "unparsed_words[${word_index}]"
                # by itself -- is a flag/option terminator, but if it is the last word, it is the start of a completion
                if [[ "${word_index}" -ne "${unparsed_word_indices[${#unparsed_word_indices[@]} - 1]}" ]]; then
                    was_flag_option_terminator_seen=true
                fi
                continue
                ;;
            -*)
                # ${word} is a flag or an option
                # If ${word} is an option, mark that the next word to be parsed is an option value
                local option
                for option in "${repeating_options[@]}" "${non_repeating_options[@]}"; do
                    [[ "${word}" = "${option}" ]] && is_parsing_option_value=true && break
                done

                # Remove ${word} from ${non_repeating_flags} or ${non_repeating_options} so it isn't offered again
                local not_found=true
                local -i index
                for index in "${!non_repeating_flags[@]}"; do
                    if [[ "${non_repeating_flags[${index}]}" = "${word}" ]]; then
                        unset "non_repeating_flags[${index}]"
                        non_repeating_flags=("${non_repeating_flags[@]}")
                        not_found=false
                        break
                    fi
                done
                if "${not_found}"; then
                    for index in "${!non_repeating_flags[@]}"; do
                        if [[ "${non_repeating_flags[${index}]}" = "${word}" ]]; then
                            unset "non_repeating_flags[${index}]"
                            non_repeating_flags=("${non_repeating_flags[@]}")
                            break
                        fi
                    done
                fi
                unset "unparsed_words[${word_index}]"
                continue
                ;;
            esac
        fi

        # ${word} is neither a flag, nor an option, nor an option value
        if [[ "${positional_number}" -lt "${positional_count}" || "${positional_count}" -lt 0 ]]; then
            # ${word} is a positional
            ((positional_number++))
            unset "unparsed_words[${word_index}]"
        else
            if [[ -z "${word}" ]]; then
                # Could be completing a flag, option, or subcommand
                positional_number=-1
            else
                # ${word} is a subcommand or invalid, so stop processing this (sub)command
                positional_number=-2
            fi
            break
        fi
    done

    unparsed_words=("${unparsed_words[@]}")

    if\
        ! "${was_flag_option_terminator_seen}"\
        && ! "${is_parsing_option_value}"\
        && [[ ("${cur}" = -* && "${positional_number}" -ge 0) || "${positional_number}" -eq -1 ]]
    then
        COMPREPLY+=($(compgen -W "${repeating_flags[*]} ${non_repeating_flags[*]} ${repeating_options[*]} ${non_repeating_options[*]}" -- "${cur}"))
    fi
}

__iommuctl_add_completions() {
    local completion
    while IFS='' read -r completion; do
        COMPREPLY+=("${completion}")
    done < <(IFS=$'\n' compgen "${@}" -- "${cur}")
}

__iommuctl_custom_complete() {
    if [[ -n "${cur}" || -z ${COMP_WORDS[${COMP_CWORD}]} || "${COMP_LINE:${COMP_POINT}:1}" != ' ' ]]; then
        local -ar words=("${COMP_WORDS[@]}")
    else
        local -ar words=("${COMP_WORDS[@]::${COMP_CWORD}}" '' "${COMP_WORDS[@]:${COMP_CWORD}}")
    fi

    "${COMP_WORDS[0]}" "${@}" "${words[@]}"
}

_iommuctl() {
    local state
    state="$(shopt -p;shopt -po)"
    trap "${state//$'\n'/;}" RETURN
    shopt -s extglob
    set +o history +o posix

    local -xr SAP_SHELL=bash
    local -x SAP_SHELL_VERSION
    SAP_SHELL_VERSION="$(IFS='.';printf %s "${BASH_VERSINFO[*]}")"
    local -r SAP_SHELL_VERSION

    local -r cur="${2}"
    local -r prev="${3}"

    local -i positional_number
    local -a unparsed_words=("${COMP_WORDS[@]:1:${COMP_CWORD}}")

    local -a repeating_flags=()
    local -a non_repeating_flags=(--json --compact --version -h --help)
    local -a repeating_options=()
    local -a non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    status|devices|device|owner|ioas|hwpt|dirty|viommu|vdevice|fault|veventq|queue|hwqueue|watch|metrics|call|help)
        # Offer subcommand argument completions
        "_iommuctl_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'status devices device owner ioas hwpt dirty viommu vdevice fault veventq queue hwqueue watch metrics call help' -- "${cur}"))
        ;;
    esac
}

_iommuctl_status() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_devices() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--owner --socket --timeout)
    __iommuctl_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--owner')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_device() {
    repeating_flags=()
    non_repeating_flags=(--version -h --help)
    repeating_options=()
    non_repeating_options=()
    __iommuctl_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    info|attach|detach|replace|release|attach-pasid|replace-pasid|detach-pasid)
        # Offer subcommand argument completions
        "_iommuctl_device_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'info attach detach replace release attach-pasid replace-pasid detach-pasid' -- "${cur}"))
        ;;
    esac
}

_iommuctl_device_info() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_device_attach() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--owner --ioas --hwpt --dirty --socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--owner')
        return
        ;;
    '--ioas')
        return
        ;;
    '--hwpt')
        return
        ;;
    '--dirty')
        __iommuctl_add_completions -W 'off'$'\n''preferred'$'\n''required'
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_device_detach() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_device_replace() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--ioas --hwpt --dirty --socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--ioas')
        return
        ;;
    '--hwpt')
        return
        ;;
    '--dirty')
        __iommuctl_add_completions -W 'off'$'\n''preferred'$'\n''required'
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_device_release() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_device_attach-pasid() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--hwpt --socket --timeout)
    __iommuctl_offer_flags_options 2

    # Offer option value completions
    case "${prev}" in
    '--hwpt')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_device_replace-pasid() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--hwpt --socket --timeout)
    __iommuctl_offer_flags_options 2

    # Offer option value completions
    case "${prev}" in
    '--hwpt')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_device_detach-pasid() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 2

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_owner() {
    repeating_flags=()
    non_repeating_flags=(--version -h --help)
    repeating_options=()
    non_repeating_options=()
    __iommuctl_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    create|list|info|release)
        # Offer subcommand argument completions
        "_iommuctl_owner_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'create list info release' -- "${cur}"))
        ;;
    esac
}

_iommuctl_owner_create() {
    repeating_flags=()
    non_repeating_flags=(--tolerate-missing --no-tolerate-missing --json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--dirty --huge-pages --socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--dirty')
        __iommuctl_add_completions -W 'off'$'\n''preferred'$'\n''required'
        return
        ;;
    '--huge-pages')
        __iommuctl_add_completions -W 'on'$'\n''off'
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_owner_list() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_owner_info() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_owner_release() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_ioas() {
    repeating_flags=()
    non_repeating_flags=(--version -h --help)
    repeating_options=()
    non_repeating_options=()
    __iommuctl_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    create|destroy|list|info|map|unmap|copy|ranges|set)
        # Offer subcommand argument completions
        "_iommuctl_ioas_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'create destroy list info map unmap copy ranges set' -- "${cur}"))
        ;;
    esac
}

_iommuctl_ioas_create() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--owner --huge-pages --socket --timeout)
    __iommuctl_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--owner')
        return
        ;;
    '--huge-pages')
        __iommuctl_add_completions -W 'on'$'\n''off'
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_ioas_destroy() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_ioas_list() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--owner --socket --timeout)
    __iommuctl_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--owner')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_ioas_info() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--max-mappings --socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--max-mappings')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_ioas_map() {
    repeating_flags=()
    non_repeating_flags=(--read-only --json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--memfd --fd --offset --length --iova --socket --timeout)
    __iommuctl_offer_flags_options 2

    # Offer option value completions
    case "${prev}" in
    '--memfd')
        return
        ;;
    '--fd')
        return
        ;;
    '--offset')
        return
        ;;
    '--length')
        return
        ;;
    '--iova')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac

    # Offer positional completions
    case "${positional_number}" in
    2)
        __iommuctl_add_completions -f
        return
        ;;
    esac
}

_iommuctl_ioas_unmap() {
    repeating_flags=()
    non_repeating_flags=(--all --tolerate-missing --no-tolerate-missing --json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--iova --length --socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--iova')
        return
        ;;
    '--length')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_ioas_copy() {
    repeating_flags=()
    non_repeating_flags=(--read-only --json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--from --src-iova --length --to --dst-iova --socket --timeout)
    __iommuctl_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--from')
        return
        ;;
    '--src-iova')
        return
        ;;
    '--length')
        return
        ;;
    '--to')
        return
        ;;
    '--dst-iova')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_ioas_ranges() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_ioas_set() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--huge-pages --socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--huge-pages')
        __iommuctl_add_completions -W 'on'$'\n''off'
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_hwpt() {
    repeating_flags=()
    non_repeating_flags=(--version -h --help)
    repeating_options=()
    non_repeating_options=()
    __iommuctl_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    list|alloc|destroy|invalidate)
        # Offer subcommand argument completions
        "_iommuctl_hwpt_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'list alloc destroy invalidate' -- "${cur}"))
        ;;
    esac
}

_iommuctl_hwpt_list() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--owner --ioas --socket --timeout)
    __iommuctl_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--owner')
        return
        ;;
    '--ioas')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_hwpt_alloc() {
    repeating_flags=()
    non_repeating_flags=(--dirty-tracking --nest-parent --pasid --json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--ioas --device --parent --viommu --data-type --iotlb --vtd-flags --pgtbl-addr --addr-width --ste --dte --fault-queue --socket --timeout)
    __iommuctl_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--ioas')
        return
        ;;
    '--device')
        return
        ;;
    '--parent')
        return
        ;;
    '--viommu')
        return
        ;;
    '--data-type')
        return
        ;;
    '--iotlb')
        return
        ;;
    '--vtd-flags')
        return
        ;;
    '--pgtbl-addr')
        return
        ;;
    '--addr-width')
        return
        ;;
    '--ste')
        return
        ;;
    '--dte')
        return
        ;;
    '--fault-queue')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_hwpt_destroy() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_hwpt_invalidate() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=(--entry)
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--entry')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_dirty() {
    repeating_flags=()
    non_repeating_flags=(--version -h --help)
    repeating_options=()
    non_repeating_options=()
    __iommuctl_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    start|stop|read|status)
        # Offer subcommand argument completions
        "_iommuctl_dirty_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'start stop read status' -- "${cur}"))
        ;;
    esac
}

_iommuctl_dirty_start() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_dirty_stop() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_dirty_read() {
    repeating_flags=()
    non_repeating_flags=(--no-clear --summary --packed --json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--iova --length --page-size --bitmap --max-runs --socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--iova')
        return
        ;;
    '--length')
        return
        ;;
    '--page-size')
        return
        ;;
    '--bitmap')
        __iommuctl_add_completions -f
        return
        ;;
    '--max-runs')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_dirty_status() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_viommu() {
    repeating_flags=()
    non_repeating_flags=(--version -h --help)
    repeating_options=()
    non_repeating_options=()
    __iommuctl_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    create|destroy|list|invalidate)
        # Offer subcommand argument completions
        "_iommuctl_viommu_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'create destroy list invalidate' -- "${cur}"))
        ;;
    esac
}

_iommuctl_viommu_create() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--type --socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--type')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_viommu_destroy() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_viommu_list() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--owner --ioas --socket --timeout)
    __iommuctl_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--owner')
        return
        ;;
    '--ioas')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_viommu_invalidate() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=(--entry)
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--entry')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_vdevice() {
    repeating_flags=()
    non_repeating_flags=(--version -h --help)
    repeating_options=()
    non_repeating_options=()
    __iommuctl_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    create|destroy)
        # Offer subcommand argument completions
        "_iommuctl_vdevice_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'create destroy' -- "${cur}"))
        ;;
    esac
}

_iommuctl_vdevice_create() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--viommu --device --virtual-id --socket --timeout)
    __iommuctl_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--viommu')
        return
        ;;
    '--device')
        return
        ;;
    '--virtual-id')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_vdevice_destroy() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_fault() {
    repeating_flags=()
    non_repeating_flags=(--version -h --help)
    repeating_options=()
    non_repeating_options=()
    __iommuctl_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    create|destroy)
        # Offer subcommand argument completions
        "_iommuctl_fault_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'create destroy' -- "${cur}"))
        ;;
    esac
}

_iommuctl_fault_create() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_fault_destroy() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_veventq() {
    repeating_flags=()
    non_repeating_flags=(--version -h --help)
    repeating_options=()
    non_repeating_options=()
    __iommuctl_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    create|destroy)
        # Offer subcommand argument completions
        "_iommuctl_veventq_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'create destroy' -- "${cur}"))
        ;;
    esac
}

_iommuctl_veventq_create() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--type --depth --socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--type')
        return
        ;;
    '--depth')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_veventq_destroy() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_queue() {
    repeating_flags=()
    non_repeating_flags=(--version -h --help)
    repeating_options=()
    non_repeating_options=()
    __iommuctl_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    list|read)
        # Offer subcommand argument completions
        "_iommuctl_queue_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'list read' -- "${cur}"))
        ;;
    esac
}

_iommuctl_queue_list() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--owner --viommu --socket --timeout)
    __iommuctl_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--owner')
        return
        ;;
    '--viommu')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_queue_read() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--count --wait --socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--count')
        return
        ;;
    '--wait')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_hwqueue() {
    repeating_flags=()
    non_repeating_flags=(--version -h --help)
    repeating_options=()
    non_repeating_options=()
    __iommuctl_offer_flags_options 0

    # Offer subcommand / subcommand argument completions
    local -r subcommand="${unparsed_words[0]}"
    unset 'unparsed_words[0]'
    unparsed_words=("${unparsed_words[@]}")
    case "${subcommand}" in
    alloc|destroy)
        # Offer subcommand argument completions
        "_iommuctl_hwqueue_${subcommand}"
        ;;
    *)
        # Offer subcommand completions
        COMPREPLY+=($(compgen -W 'alloc destroy' -- "${cur}"))
        ;;
    esac
}

_iommuctl_hwqueue_alloc() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--viommu --type --index --base --length --socket --timeout)
    __iommuctl_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--viommu')
        return
        ;;
    '--type')
        return
        ;;
    '--index')
        return
        ;;
    '--base')
        return
        ;;
    '--length')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_hwqueue_destroy() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 1

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_watch() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--owner --count --socket --timeout)
    __iommuctl_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--owner')
        return
        ;;
    '--count')
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_metrics() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=()
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 0

    # Offer option value completions
    case "${prev}" in
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_call() {
    repeating_flags=()
    non_repeating_flags=(--json --compact --version -h --help)
    repeating_options=(--fd)
    non_repeating_options=(--socket --timeout)
    __iommuctl_offer_flags_options 2

    # Offer option value completions
    case "${prev}" in
    '--fd')
        __iommuctl_add_completions -f
        return
        ;;
    '--socket')
        __iommuctl_add_completions -f
        return
        ;;
    '--timeout')
        return
        ;;
    esac
}

_iommuctl_help() {
    repeating_flags=()
    non_repeating_flags=(--version)
    repeating_options=()
    non_repeating_options=()
    __iommuctl_offer_flags_options -1
}

complete -o filenames -F _iommuctl iommuctl
