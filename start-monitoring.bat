@echo off
REM One-click start of the containerised stack (docker-compose.dev.yml) on
REM Windows: Redis, the three services, the mock upstream, Prometheus and
REM Grafana; then seeds the demo namespace "demo" (model gpt-4o-mini,
REM instance mock-1, model claude-sonnet on the mock's Anthropic API, a new
REM API key) through the compose service demo-seed,
REM which prints the key and a curl example; then prints the URLs.
REM start-monitoring.sh does the same elsewhere. Runbook: docs\operations.md
REM Stop it with: docker compose -f docker-compose.dev.yml down
setlocal
cd /d "%~dp0"

docker compose version >nul 2>&1
if errorlevel 1 (
    echo Docker Compose v2 is not available. Install Docker Desktop first.
    exit /b 1
)

if "%ADMIN_TOKEN%"=="" set ADMIN_TOKEN=dev-admin-token
docker compose -f docker-compose.dev.yml up -d --build
if errorlevel 1 (
    echo Starting the stack failed. See: docker compose -f docker-compose.dev.yml logs
    exit /b 1
)

REM Waits for the config-center, gateway and mock to be healthy, then seeds
REM from inside the compose network.
echo Waiting for the services to become healthy, then seeding the demo...
docker compose -f docker-compose.dev.yml run --rm demo-seed
if errorlevel 1 (
    echo Seeding failed. See: docker compose -f docker-compose.dev.yml ps
    echo and: docker compose -f docker-compose.dev.yml logs gateway config-center
    exit /b 1
)

echo   Config-center admin   http://localhost:8000/api/v1   (Authorization: Bearer %ADMIN_TOKEN%)
echo   Token-service         http://localhost:8001
echo   Mock upstream         http://localhost:9000/v1
echo Monitoring:
echo   Prometheus            http://localhost:9090   (targets: http://localhost:9090/targets)
echo   Grafana               http://localhost:3001   (admin / admin123, folder "AI Gateway")
echo Runbook: docs\operations.md
echo Logs: docker compose -f docker-compose.dev.yml logs -f gateway
echo Stop: docker compose -f docker-compose.dev.yml down      (add -v to drop the data volumes)
endlocal
