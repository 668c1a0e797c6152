# The site as a Hugging Face Space (Docker SDK): gunicorn serving create_app() on port 7860, as uid 1000.
# Set LOGTO_ENDPOINT, LOGTO_APP_ID, LOGTO_APP_SECRET and FLASK_SECRET_KEY as the Space's secrets.
FROM python:3.11-slim

RUN useradd --create-home --uid 1000 user
USER 1000
ENV PATH="/home/user/.local/bin:${PATH}" \
    PYTHONUNBUFFERED=1
WORKDIR /home/user/app

COPY --chown=user requirements.txt .
RUN pip install --no-cache-dir --user -r requirements.txt
COPY --chown=user . .

EXPOSE 7860
# Threads: a slow answer from Logto or the Hub holds up one request, not the whole site.
CMD ["gunicorn", "--bind", "0.0.0.0:7860", "--threads", "8", "--timeout", "60", "flask_app:create_app()"]
