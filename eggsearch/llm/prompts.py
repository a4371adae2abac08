"""Prompt templates: ``prompts/<agent>.system.j2`` and ``prompts/<agent>.user.j2``.

Templates are Jinja2 with ``StrictUndefined``: a variable the caller did not pass is an error,
never an empty string in a prompt. Jinja2 is used because the prompts need loops and conditionals
(the memory, the trial history, the repair round) that plain ``str.format`` cannot express, and
it is already installed with PyTorch.
"""

from __future__ import annotations

from pathlib import Path

from eggsearch.config_files import PROMPTS_DIR
from eggsearch.errors import ConfigFileError


class PromptLibrary:
    def __init__(self, directory: Path | None = None):
        import jinja2

        self.directory = Path(directory or PROMPTS_DIR)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.directory)),
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False,
            trim_blocks=True, lstrip_blocks=True)

    def names(self) -> list[str]:
        """Every template in the directory."""
        return sorted(p.name for p in self.directory.glob("*.j2"))

    def check(self, names: list[str]) -> None:
        """Load (and so parse) ``names``; a missing or broken one raises ``ConfigFileError``."""
        import jinja2

        for name in names:
            try:
                self.env.get_template(name)
            except jinja2.TemplateNotFound:
                raise ConfigFileError(f"{self.directory / name}: prompt template missing") \
                    from None
            except jinja2.TemplateSyntaxError as exc:
                raise ConfigFileError(f"{self.directory / name} line {exc.lineno}: "
                                      f"{exc.message}") from None

    def render(self, name: str, context: dict) -> str:
        """Render one template; a missing template or variable raises ``ConfigFileError``."""
        import jinja2

        try:
            return self.env.get_template(name).render(**context).strip() + "\n"
        except jinja2.TemplateNotFound:
            raise ConfigFileError(f"{self.directory / name}: prompt template missing") from None
        except jinja2.UndefinedError as exc:
            raise ConfigFileError(f"{self.directory / name}: {exc.message}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigFileError(f"{self.directory / name} line {exc.lineno}: "
                                  f"{exc.message}") from None

    def messages(self, agent: str, context: dict) -> list[dict]:
        """The chat messages for ``agent``: its system prompt, then its user prompt."""
        return [{"role": "system", "content": self.render(f"{agent}.system.j2", context)},
                {"role": "user", "content": self.render(f"{agent}.user.j2", context)}]
