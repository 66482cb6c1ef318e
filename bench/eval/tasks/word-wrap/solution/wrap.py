"""Word wrapping for the plain-text e-mails the newsletter sends."""


def wrap(text, width):
    """text as a list of lines of at most width characters.

    Words are separated by any whitespace (spaces, tabs, newlines); a line holds as many words as fit, joined by
    single spaces. A word longer than width stands alone on its own line, unbroken. There are no empty lines: text
    with no words gives []. ValueError when width is less than 1.
    """
    if width < 1:
        raise ValueError("width must be at least 1")
    lines = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) <= width:
            current += " " + word
        else:
            if current:
                lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def fill(text, width):
    """wrap(text, width) joined into one string with newlines."""
    return "\n".join(wrap(text, width))
