"""What course.py says, in English and Polish. Lessons, quizzes and hints are translated in lessons/."""

import locale
import os

LANGUAGES = ("en", "pl")

MESSAGES = {
    # checks
    "step_n": ("Step {n}", "Krok {n}"),
    "all_pass": ("All {total} checks pass.", "Wszystkie sprawdziany ({total}) przechodzą."),
    "some_pass": ("{passed} of {total} checks pass.", "Przechodzi {passed} z {total} sprawdzianów."),
    "hint_pointer": ("Stuck? A hint: python course.py hint {n}", "Nie wiesz, jak dalej? Podpowiedź: python course.py hint {n}"),
    "verbose_pointer": ("The full tracebacks: python course.py check {n} -v",
                        "Pełne ślady błędów: python course.py check {n} -v"),
    "n_pass": ("{passed} checks pass.", "Przechodzące sprawdziany: {passed}."),
    "waiting": ("checks waiting: {count}", "czekające sprawdziany: {count}"),
    "not_run": ("checks not run: {count}", "nieuruchomione sprawdziany: {count}"),
    "more_fail": ("... and {hidden} more failing checks: python course.py check {n} --all",
                  "... i jeszcze {hidden} niezaliczonych sprawdzianów: python course.py check {n} --all"),
    "first_to_fix": ("First to fix:", "Do poprawienia najpierw:"),
    "every_check": ("Every check, one line each: python course.py check {n}",
                    "Wszystkie sprawdziany, po jednej linii: python course.py check {n}"),
    "checking": ("Running the checks of step {n}...", "Uruchamiam sprawdziany kroku {n}..."),
    # where you stand
    "header": ("write-transformer · step {n} of {total}: {title}", "write-transformer · krok {n} z {total}: {title}"),
    "your_file": ("Your file: {path}", "Twój plik: {path}"),
    "whole_lesson": ("The whole lesson: python course.py lesson {n}", "Cała lekcja: python course.py lesson {n}"),
    "what_next": ("Next: edit {path}, then python course.py check {n} (or watch); when all pass: python course.py next",
                  "Dalej: edytuj {path}, potem python course.py check {n} (albo watch); gdy wszystko przejdzie: python course.py next"),
    "finished": ("You have finished the course: every step passes. Train on your own text: python course.py train FILE",
                 "Kurs ukończony: wszystkie kroki przechodzą. Wytrenuj model na własnym tekście: python course.py train PLIK"),
    # progress file
    "welcome": ("Welcome! Your progress will be kept in progress.json.",
                "Witaj! Postępy będą zapisywane w progress.json."),
    "progress_missing": ("No progress file (progress.json): rebuilt it from your checks.",
                         "Brak pliku postępów (progress.json): odtworzono go ze sprawdzianów."),
    "progress_corrupt": ("Your progress file was unreadable ({why}): rebuilt it from your checks.",
                         "Pliku postępów nie dało się odczytać ({why}): odtworzono go ze sprawdzianów."),
    "progress_set_aside": ("The unreadable progress file is kept as {name}.",
                           "Nieczytelny plik postępów zachowano jako {name}."),
    "progress_unsaved": ("your progress cannot be saved: {why}", "nie da się zapisać postępów: {why}"),
    "progress_unsaved_warning": ("Your progress cannot be saved, so nothing this command records will be kept: "
                                 "{why}.",
                                 "Nie da się zapisać postępów, więc nic, co zapisze to polecenie, nie zostanie "
                                 "zachowane: {why}."),
    "unsaved_folder": ("{name} is a folder, not a file, and is left as it is: move or rename it",
                       "{name} jest folderem, a nie plikiem, i zostaje bez zmian: przenieś go lub zmień mu nazwę"),
    "unsaved_denied": ("{path} cannot be written ({why}): allow writing there, or work in a copy of the course "
                       "that you own",
                       "nie można zapisać {path} ({why}): zezwól na zapis albo pracuj na własnej kopii kursu"),
    # list
    "list_title": ("The course", "Kurs"),
    "state_passed": ("passed", "zaliczony"),
    "state_current": ("current", "bieżący"),
    "state_open": ("open", "otwarty"),
    "state_locked": ("locked", "zablokowany"),
    "quiz_result": ("quiz {score}/{total}", "quiz {score}/{total}"),
    # next / goto
    "next_not_yet": ("Step {n} is not done yet: {passed} of {total} checks pass.",
                     "Krok {n} nie jest jeszcze gotowy: przechodzi {passed} z {total} sprawdzianów."),
    "next_unlocked": ("Step {n} passes. Unlocked step {m}: {title}.", "Krok {n} zaliczony. Odblokowano krok {m}: {title}."),
    "next_recheck": ("That was the last step. Checking every step once more...",
                     "To był ostatni krok. Sprawdzam jeszcze raz wszystkie kroki..."),
    "next_back_to": ("Step {n} no longer passes: back to step {n}.", "Krok {n} już nie przechodzi: wracamy do kroku {n}."),
    "goto_locked": ("step {n} is locked: finish step {unlocked} first (python course.py next)",
                    "krok {n} jest zablokowany: najpierw ukończ krok {unlocked} (python course.py next)"),
    "goto_done": ("Now on step {n}: {title}.", "Teraz krok {n}: {title}."),
    # hints
    "hint_all_pass": ("All checks of step {n} pass: no hint needed.", "Wszystkie sprawdziany kroku {n} przechodzą: podpowiedź niepotrzebna."),
    "hint_header": ("Hint {i} of {total} for “{check}”:", "Podpowiedź {i} z {total} do „{check}”:"),
    "hint_last": ("That was the last hint for this check. The reference: python course.py solution {n} --peek",
                  "To była ostatnia podpowiedź do tego sprawdzianu. Rozwiązanie: python course.py solution {n} --peek"),
    "hint_none": ("There is no hint for “{check}”; its message says what it expects.",
                  "Brak podpowiedzi do „{check}”; jego komunikat mówi, czego oczekuje."),
    "hint_failing": ("The first failing check: {title} — {reason}", "Pierwszy nieprzechodzący sprawdzian: {title} — {reason}"),
    # solution / reset
    "solution_locked": ("step {n} does not pass yet, so its solution stays hidden; to look anyway: python course.py solution {n} --peek",
                        "krok {n} jeszcze nie przechodzi, więc rozwiązanie jest ukryte; by je zobaczyć: python course.py solution {n} --peek"),
    "solution_peek": ("Peeking before you have solved it takes away the best part: try a hint first (python course.py hint {n}).",
                      "Podglądanie przed rozwiązaniem odbiera najlepszą część: spróbuj najpierw podpowiedzi (python course.py hint {n})."),
    "reset_confirm": ("Replace {path} with the original stub? Your file will be kept as {backup}.",
                      "Zastąpić {path} oryginalnym szablonem? Twój plik zostanie zachowany jako {backup}."),
    "reset_needs_yes": ("reset replaces your file: confirm with --yes when there is no terminal to ask in",
                        "reset zastępuje twój plik: potwierdź opcją --yes, gdy nie ma terminala do zapytania"),
    "reset_done": ("Restored the stub of step {n}; your file is in {backup}.", "Przywrócono szablon kroku {n}; twój plik jest w {backup}."),
    "reset_unchanged": ("{path} is already the original stub.", "{path} to już oryginalny szablon."),
    "reset_cancelled": ("Nothing changed.", "Nic nie zmieniono."),
    "reset_all_confirm": ("Restore the stubs of all steps and start the course again? Your files will be kept in backups/.",
                          "Przywrócić szablony wszystkich kroków i zacząć kurs od nowa? Twoje pliki zostaną zachowane w backups/."),
    "backup_failed": ("your file could not be kept in {folder}/ ({why}), so nothing was changed",
                      "nie udało się zachować twojego pliku w {folder}/ ({why}), więc nic nie zmieniono"),
    "restore_failed": ("{path} could not be replaced with its stub ({why}){kept}",
                       "nie udało się zastąpić {path} szablonem ({why}){kept}"),
    "restore_kept": ("; your file is also kept in {backup}", "; twój plik jest też zachowany w {backup}"),
    "reset_all_done": ("Restored {count} stub(s); the course starts again at step 1.",
                       "Przywrócono szablony: {count}; kurs zaczyna się od kroku 1."),
    # demos, quizzes, lessons
    "demo_yours": ("Running your code (step {n} passes).", "Uruchamiam twój kod (krok {n} przechodzi)."),
    "demo_reference": ("Running the reference: your step {n} does not pass yet.",
                       "Uruchamiam rozwiązanie wzorcowe: twój krok {n} jeszcze nie przechodzi."),
    "demo_failed": ("Your code raised {error}; showing the reference instead.",
                    "Twój kod zgłosił {error}; pokazuję rozwiązanie wzorcowe."),
    "quiz_header": ("Quiz, step {n}: {count} questions.", "Quiz, krok {n}: pytań: {count}."),
    "quiz_prompt": ("Your answer (1-{k}): ", "Twoja odpowiedź (1-{k}): "),
    "quiz_invalid": ("Please type a number from 1 to {k}.", "Wpisz liczbę od 1 do {k}."),
    "quiz_right": ("Right.", "Dobrze."),
    "quiz_wrong": ("Not quite: the answer is {answer}.", "Niezupełnie: poprawna odpowiedź to {answer}."),
    "quiz_score": ("You answered {score} of {total} right.", "Poprawne odpowiedzi: {score} z {total}."),
    "quiz_no_tty": ("No terminal to ask in: answer with python course.py quiz {n} --answers {example}",
                    "Brak terminala: odpowiedz poleceniem python course.py quiz {n} --answers {example}"),
    "quiz_bad_answers": ("--answers needs {count} numbers from 1 to the number of choices, separated by commas (got {got!r})",
                         "--answers wymaga {count} liczb od 1 do liczby odpowiedzi, oddzielonych przecinkami (podano {got!r})"),
    "quiz_missing": ("step {n} has no quiz yet", "krok {n} nie ma jeszcze quizu"),
    "lesson_missing": ("step {n} has no lesson yet", "krok {n} nie ma jeszcze lekcji"),
    # watch
    "watch_start": ("Watching exercises/ for changes: the checks of step {n} run again whenever you save. Press q to quit.",
                    "Obserwuję exercises/: sprawdziany kroku {n} uruchomią się przy każdym zapisie. Naciśnij q, aby wyjść."),
    "watch_start_plain": ("Watching exercises/ for changes: the checks of step {n} run again whenever you save. Ctrl+C quits.",
                          "Obserwuję exercises/: sprawdziany kroku {n} uruchomią się przy każdym zapisie. Ctrl+C kończy."),
    "watch_waiting": ("Waiting for you to save a file... (q quits)", "Czekam na zapis pliku... (q kończy)"),
    "watch_passed": ("Step {n} passes! Move on with: python course.py next", "Krok {n} przechodzi! Dalej: python course.py next"),
    # the home screen
    "home_keys": ("l lesson · h hint · d demo · z quiz · n next · s steps · c check · q quit",
                  "l lekcja · h podpowiedź · d demo · z quiz · n dalej · s kroki · c sprawdź · q wyjście"),
    "home_saves": ("Edit {path} in your editor: the checks run again each time you save.",
                   "Edytuj {path} w swoim edytorze: sprawdziany uruchomią się przy każdym zapisie."),
    "home_passed": ("Step {n} passes: press n for the next step.", "Krok {n} przechodzi: naciśnij n, aby przejść dalej."),
    "home_back": ("Press any key to go back.", "Naciśnij dowolny klawisz, aby wrócić."),
    "home_progress": ("{passed} of {total} steps pass", "przechodzi {passed} z {total} kroków"),
    "home_unknown_key": ("{pressed!r} does nothing here: the keys are below.", "{pressed!r} nic tu nie robi: klawisze są poniżej."),
    # errors
    "interrupted": ("Stopped.", "Przerwano."),
    "bad_step": ("there is no step {n}: the steps are numbered 1 to {total}", "nie ma kroku {n}: kroki mają numery od 1 do {total}"),
    "no_command_near": ("there is no command {word!r}; did you mean: python course.py {near}?",
                        "nie ma polecenia {word!r}; może chodziło o: python course.py {near}?"),
    "no_command": ("there is no command {word!r}; the commands: python course.py --help",
                   "nie ma polecenia {word!r}; lista poleceń: python course.py --help"),
    "bad_lang": ("unknown language {lang!r}: choose one of {choices}", "nieznany język {lang!r}: wybierz jeden z {choices}"),
}


class Translator:
    """t("key", **values) -> the message in the chosen language; t.lang is that language."""

    lang = "en"

    def __call__(self, key: str, **values) -> str:
        en, pl = MESSAGES[key]
        return (pl if self.lang == "pl" else en).format(**values)


t = Translator()


def system_language() -> str:
    """'pl' when the system's locale is Polish, else 'en'."""
    for var in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        value = os.environ.get(var, "")
        if value:
            return "pl" if value.lower().startswith("pl") else "en"
    try:
        code = locale.getlocale()[0] or ""
    except ValueError:
        code = ""
    return "pl" if code.lower().startswith("pl") else "en"
